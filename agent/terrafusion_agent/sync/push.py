"""Push: send captured local edits to central in batches, reconciling each row.

Each batch is one central transaction that locks its rows, so nobody changes them
between the comparison and the write. Local edit entries are settled only after the
central commit; if the agent dies in between, the next push finds central already equal
to the local row and does nothing (re-delivery is a no-op).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

from terrafusion_agent.config import Config
from terrafusion_agent.errors import SyncCancelled
from terrafusion_agent.stores.base import TableInfo
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.stores.rows import decode_base
from terrafusion_agent.sync.conflicts import Outcome, reconcile

log = logging.getLogger("terrafusion.sync")
BATCH = 500


def push(central, local: LocalStore, infos: dict[str, TableInfo], agent_id: str,
         config: Config, summary: dict, stop: Optional[threading.Event] = None,
         progress: Optional[Callable[[str, int, int], None]] = None) -> None:
    for name, info in infos.items():
        entries = local.pending(name)
        for start in range(0, len(entries), BATCH):
            if stop is not None and stop.is_set():
                raise SyncCancelled("The sync was stopped before it finished pushing.")
            _push_batch(central, local, info, entries[start:start + BATCH], agent_id,
                        config.policy_for(name), summary)
            if progress:
                progress(name, min(start + BATCH, len(entries)), len(entries))


def _push_batch(central, local: LocalStore, info: TableInfo, entries: list[dict],
                agent_id: str, policy: str, summary: dict) -> None:
    keys = [e["pk"] for e in entries]
    local_rows = local.rows_by_key(info, keys)
    with central.write_session(agent_id) as ws:
        central_rows = ws.lock_rows(info, keys)
        outcomes = [
            reconcile(info, e["pk"], e["op"], decode_base(info, e["base_json"]),
                      local_rows.get(e["pk"]), central_rows.get(e["pk"]), policy)
            for e in entries]
        ws.delete(info, [o.key for o in outcomes if o.central_delete])
        ws.insert(info, [o.central_insert for o in outcomes if o.central_insert is not None])
        ws.update(info, [(o.key, o.central_update) for o in outcomes if o.central_update])
    # central has committed: now the local side of each outcome
    with local.writing():
        for entry, o in zip(entries, outcomes):
            _settle_locally(local, info, entry, o, summary)


def _settle_locally(local: LocalStore, info: TableInfo, entry: dict, o: Outcome,
                    summary: dict) -> None:
    if o.pushed_op:
        summary["rows"]["push"][o.pushed_op] += 1
        summary["pushed"] += 1
    if o.conflict_columns is not None:
        summary["conflicts"] += 1
        local.record_conflict(info, o.key, o.conflict_columns, o.base, o.local, o.central,
                              resolution=o.resolution)
        if o.resolution is None:  # manual: wait for a person, touch nothing
            local.mark_conflicted(entry["id"])
            return
        log.info("conflict on %s %s settled by policy %s", info.name, o.key, o.resolution)
    if o.local_delete:
        local.delete_rows(info, [o.key])
    elif o.local_upsert is not None:
        local.upsert_rows(info, [o.local_upsert])
    local.settle_change(entry, info, o.central_after)
