"""Stores: the central database (PostGIS or SpatiaLite) and the local SpatiaLite copy."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from terrafusion_agent.config import Config
from terrafusion_agent.stores.base import CentralStore


def embedded_central_path(config: Config) -> Optional[Path]:
    """The file of an embedded (SpatiaLite) central database; None for PostGIS."""
    url = config.central_url
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def open_central(config: Config, create: bool = False) -> CentralStore:
    """Connect to the configured central database (``create`` only for init-central)."""
    path = embedded_central_path(config)
    if path is not None:
        from terrafusion_agent.errors import CentralUnavailable
        from terrafusion_agent.stores.sqlite_central import SpatiaLiteCentral

        if not create and not path.exists():
            # a fresh user's first command: say how to get a central at all
            raise CentralUnavailable(
                f"The central database {path} does not exist: run 'terrafusion-agent "
                "init-central --demo-parcels 10000' to create a demo county there, or set "
                f"central.url in {config.file} to the county's database and run "
                "'terrafusion-agent init-central'.")

        return SpatiaLiteCentral(path, create=create)
    from terrafusion_agent.stores.postgis import PostGISCentral

    return PostGISCentral(config.central_url, config.central_schema,
                          config.connect_timeout_seconds, config.statement_timeout_seconds)
