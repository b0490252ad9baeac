"""What the local copy offers as map layers (for the plugin and other front ends)."""

from __future__ import annotations

from terrafusion_agent.config import Config
from terrafusion_agent.stores.local import LocalStore, local_name


def synced_layers(config: Config) -> list[dict]:
    """One entry per synced table: name, geometry column (None for plain tables), SRID,
    geometry type, row count and the local file path. Raises LocalUnavailable when the
    local copy does not exist yet."""
    local = LocalStore.open_existing(config.local_path)
    try:
        out = []
        for info in local.tables():
            g = info.geometry
            out.append({
                "table": local_name(info.name),
                "geometry_column": g.column if g else None,
                "srid": g.srid if g else None,
                "geometry_type": g.geometry_type if g else None,
                "rows": local.count(info),
                "path": str(config.local_path),
            })
        return out
    finally:
        local.close()
