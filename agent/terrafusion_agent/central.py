"""``terrafusion-agent init-central``: the central database made ready for syncing.

It lives above the stores, since it drives one from outside: the bookkeeping through
the migrations, the demo county through its generator, the change tracking through the
store's contract.
"""

from __future__ import annotations

from typing import Any, Optional

from terrafusion_agent.stores.base import CentralStore, check_tables


def init_central(store: CentralStore, tables: tuple[str, ...],
                 demo_parcels: Optional[int] = None) -> dict[str, Any]:
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
    result: dict[str, Any] = {"central": store.describe()}
    if demo_parcels is not None:
        result["demo"] = county.create(store, demo_parcels)
    result["tables"] = check_tables(store, tables)
    for name in tables:
        store.install_tracking(store.table_info(name))
    store.central_id()
    return result


def installed(store: CentralStore) -> list[dict[str, str]]:
    """What init-central made in the central database (see ``uninstall-central``)."""
    return [{"kind": kind, "name": name} for kind, name in store.installed_objects()]


def uninstall_central(store: CentralStore) -> dict[str, Any]:
    """Remove what init-central made, all or nothing: the capture triggers on the
    county's tables and the bookkeeping (its tables, view and functions, with the change
    log, the audit history and the agents' heartbeats). The county's tables keep every
    row and column; init-central can install it all again."""
    removed = store.uninstall()
    return {"central": store.describe(),
            "removed": [{"kind": kind, "name": name} for kind, name in removed]}
