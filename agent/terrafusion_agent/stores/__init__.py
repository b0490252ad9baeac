"""Stores: the central database (PostGIS or SpatiaLite) and the local SpatiaLite copy."""

from __future__ import annotations

from typing import Any, Optional

from terrafusion_agent.config import Config
from terrafusion_agent.stores.base import CentralStore, check_tables


def open_central(config: Config, create: bool = False) -> CentralStore:
    """Connect to the configured central database (``create`` only for init-central)."""
    url = config.central_url
    if url.startswith("sqlite:///"):
        from terrafusion_agent.stores.sqlite_central import SpatiaLiteCentral

        return SpatiaLiteCentral(url[len("sqlite:///"):], create=create)
    from terrafusion_agent.stores.postgis import PostGISCentral

    return PostGISCentral(url, config.central_schema, config.connect_timeout_seconds,
                          config.statement_timeout_seconds)


def init_central(store: CentralStore, tables: tuple[str, ...],
                 demo_parcels: Optional[int] = None) -> dict[str, Any]:
    """Create or upgrade the central bookkeeping, optionally load the demo county, check
    every configured table (one without a primary key is refused by name) and install
    its change tracking. Safe to run again at any time."""
    from terrafusion_agent import migrate
    from terrafusion_agent.demo import county

    migrate.upgrade_central(store)
    result: dict[str, Any] = {"central": store.describe()}
    if demo_parcels is not None:
        result["demo"] = county.create(store, demo_parcels)
    result["tables"] = check_tables(store, tables)
    for name in tables:
        store.install_tracking(store.table_info(name))
    store.central_id()
    return result
