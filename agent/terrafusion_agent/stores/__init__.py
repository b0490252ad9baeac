"""Stores: the central database (PostGIS or SpatiaLite) and the local SpatiaLite copy."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from terrafusion_agent.config import Config
from terrafusion_agent.stores.base import CentralStore, check_tables


def embedded_central_path(config: Config) -> Optional[Path]:
    """The file of an embedded (SpatiaLite) central database; None for PostGIS."""
    url = config.central_url
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def open_central(config: Config, create: bool = False) -> CentralStore:
    """Connect to the configured central database (``create`` only for init-central)."""
    path = embedded_central_path(config)
    if path is not None:
        from terrafusion_agent.stores.sqlite_central import SpatiaLiteCentral

        return SpatiaLiteCentral(path, create=create)
    from terrafusion_agent.stores.postgis import PostGISCentral

    return PostGISCentral(config.central_url, config.central_schema,
                          config.connect_timeout_seconds, config.statement_timeout_seconds)


def init_central(store: CentralStore, tables: tuple[str, ...],
                 demo_parcels: Optional[int] = None) -> dict:
    """Create or upgrade the central bookkeeping, optionally load the demo county, check
    every configured table (one without a primary key is refused by name) and install
    its change tracking. Safe to run again at any time.

    A table that is missing or has no key is refused before anything is written, so a
    refused run leaves the central database as it found it (the demo's own tables are
    checked once the demo has made them)."""
    from terrafusion_agent import migrate
    from terrafusion_agent.demo import county

    for name in tables:
        if demo_parcels is None or name not in county.TABLES:
            store.table_info(name)
    migrate.upgrade_central(store)
    result: dict = {"central": store.describe()}
    if demo_parcels is not None:
        result["demo"] = store.create_demo(demo_parcels)
    result["tables"] = check_tables(store, tables)
    for name in tables:
        store.install_tracking(store.table_info(name))
    store.central_id()
    return result
