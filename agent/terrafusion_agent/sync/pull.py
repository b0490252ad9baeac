"""Pull: bring what changed centrally since this agent's checkpoint into the local copy.

The central changes are read in one consistent snapshot; they and the new checkpoint are
written locally in one transaction, so a pull killed at any instant is either fully
applied or not at all, and the next pull starts from the right place. Rows with a local
edit waiting to be pushed are left alone here: the push compares them three ways.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, Callable, Optional

from terrafusion_agent import faults
from terrafusion_agent.errors import NotFound
from terrafusion_agent.stores.base import CentralStore, Key, ReadSession, TableInfo
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.sync.reader import record_floor

log = logging.getLogger("terrafusion.sync")
#: progress(table, rows_done, rows_total)
Progress = Callable[[str, int, int], None]

#: a table with at least 1/BULK_FRACTION of its rows changed is copied whole
#: (see :func:`_mostly_changed`); fewer than BULK_MIN_CHANGES never are
BULK_FRACTION = 6
BULK_MIN_CHANGES = 5000

CHECKPOINT = "central_checkpoint"
CENTRAL_ID = "central_id"


def same_layout(a: TableInfo, b: TableInfo) -> bool:
    return (a.pk == b.pk and a.geometry == b.geometry
            and [(c.name, c.kind) for c in a.columns] == [(c.name, c.kind) for c in b.columns])


def pull(central: CentralStore, local: LocalStore, infos: dict[str, TableInfo],
         agent_id: str, summary: dict[str, Any], progress: Optional[Progress] = None,
         central_id: Optional[str] = None, source: Optional[CentralStore] = None) -> None:
    """``central_id``: central's identity when the caller read it already. ``source``:
    the store to read, a read replica of ``central`` (see ``sync.reader``); by default
    ``central``, which takes every write."""
    if central_id is None:
        central_id = central.central_id()
    with local.writing():
        with (source or central).read_session() as rs:
            checkpoint = local.meta(CHECKPOINT)
            new_checkpoint, floor = rs.checkpoint(), rs.floor()
            resync = (checkpoint is None or local.meta(CENTRAL_ID) != central_id
                      or rs.lost_since(checkpoint))
            if resync and checkpoint is not None:
                log.warning("checkpoint %s is no longer usable: copying every table again",
                            checkpoint)
            counts = ({} if resync or checkpoint is None
                      else rs.change_counts(checkpoint, agent_id))
            bulk = {name for name in infos if _mostly_changed(local, infos[name],
                                                              counts.get(name, 0))}
            changed = ({} if resync or checkpoint is None else rs.changed_keys(
                checkpoint, agent_id, [n for n in infos if counts.get(n) and n not in bulk]))
            faults.point("pull.after_snapshot")
            for name, info in infos.items():
                local_info = _local_info(local, name)
                stats = summary["tables"].setdefault(name, {})
                if resync or local_info is None or not same_layout(local_info, info):
                    n = _full_copy(rs, local, info, local_info, progress)
                    stats.update(mode="full", pulled=n)
                    summary["rows"]["pull"]["insert"] += n
                elif name in bulk:
                    n = _full_copy(rs, local, info, local_info, progress)
                    stats.update(mode="bulk", pulled=n)
                    summary["rows"]["pull"]["update"] += n
                else:
                    if local_info != info:  # e.g. a changed database type name
                        local.save_table_info(info)
                    n = _apply_changes(rs, local, info, changed.get(name, []), summary)
                    stats.update(mode="incremental", pulled=n)
                    if progress and n:
                        progress(name, n, n)
                summary["pulled"] += stats["pulled"]
        # the checkpoint must never name a transaction a server crash could lose: its
        # id would be handed to a later transaction, which the next pull would skip
        if not rs.flushed:
            central.make_durable()
        local.set_meta(CHECKPOINT, new_checkpoint)
        local.set_meta(CENTRAL_ID, central_id)
        record_floor(local, floor)
        local.record_pulls({name: int(summary["tables"][name]["pulled"]) for name in infos})
        faults.point("pull.before_local_commit")
    faults.point("pull.after_local_commit")


def _mostly_changed(local: LocalStore, info: TableInfo, changes: int) -> bool:
    """Whether ``changes`` (change-log entries, at least the changed rows) make copying
    the whole table cheaper than fetching and applying the changed rows one by one.

    Measured at 200,000 parcels (bench_mass): a pull of 10 % changed rows took 0.42x
    the full pull, so a changed row costs about four times a copied one and the copy
    wins from about a quarter of the table on; from a sixth on it is taken, to stay
    clear of the measure's noise, and only for tables where a copy is worth it."""
    if changes < BULK_MIN_CHANGES:
        return False
    try:
        rows = local.count(info)
    except sqlite3.Error:  # not copied yet: the full copy decides elsewhere
        return False
    # a copy must also read back and rewrite every row with a captured edit (a kept
    # row costs about what a changed one does), while the changes fetch skips them: a
    # revaluation made on both sides is cheaper fetched than copied
    kept = local.pending_count(info.name)
    return (changes - kept) * BULK_FRACTION >= rows


def _local_info(local: LocalStore, name: str) -> Optional[TableInfo]:
    try:
        return local.table_info(name)
    except NotFound:  # not synced yet
        return None


def _full_copy(rs: ReadSession, local: LocalStore, info: TableInfo,
               old: Optional[TableInfo], progress: Optional[Progress]) -> int:
    """Copy the whole table, keeping every pending local edit in place (a first sync,
    a table whose columns changed centrally, or a checkpoint too old to continue from)."""
    # rows waiting for central's version ("keep central") take the fresh copy's
    refetch = ({e["pk"] for e in local.pending(info.name, ("refetch",))}
               if old is not None else set())
    keys = local.pending_keys(info.name) - refetch if old is not None else set()
    kept = local.rows_by_key(old, list(keys)) if old is not None and keys else {}
    total = rs.count(info) if progress else 0
    report = (lambda done: progress(info.name, done, total)) if progress else None
    batches = rs.sql_batches(info)
    if batches is not None:
        n = local.replace_table(info, None, report, sql_batches=batches,
                                rtree_leaves=rs.rtree_leaves(info))
    else:
        n = local.replace_table(info, rs.read_rows(info), report)
    if old is not None and not same_layout(old, info):
        faults.point("schema.mid_rebuild")
    if old is not None and keys and _kinds_changed(old, info):
        local.rewrite_bases(old, info)
    for key in refetch:
        local.drop_change(info.name, key)
    if keys:
        fresh = local.rows_by_key(info, list(keys))
        names = set(info.column_names)
        rows, gone = [], []
        for key in keys:
            if key in kept:
                row = dict(fresh.get(key, {}))
                row.update({c: v for c, v in kept[key].items() if c in names})
                rows.append(row)
            else:
                gone.append(key)
        local.upsert_rows(info, rows)
        local.delete_rows(info, gone)
    return n


def _kinds_changed(old: TableInfo, new: TableInfo) -> bool:
    """Whether a column kept its name but changed its kind (say a numeric that now
    travels exactly, after copies made by an earlier version)."""
    kinds = {c.name: c.kind for c in old.columns}
    return any(kinds.get(c.name, c.kind) != c.kind for c in new.columns)


def _apply_changes(rs: ReadSession, local: LocalStore, info: TableInfo, keys: list[Key],
                   summary: dict[str, Any]) -> int:
    refetch = [e["pk"] for e in local.pending(info.name, ("refetch",))]
    if not keys and not refetch:
        return 0
    waiting = local.pending_keys(info.name) - set(refetch)
    todo = [k for k in dict.fromkeys([*keys, *refetch]) if k not in waiting]
    rows = rs.rows_by_key(info, todo)
    present = local.existing_keys(info, todo)
    upserts = [rows[k] for k in todo if k in rows]
    deletes = [k for k in todo if k not in rows and k in present]
    counts = summary["rows"]["pull"]
    for k in todo:
        if k in rows:
            counts["update" if k in present else "insert"] += 1
    counts["delete"] += len(deletes)
    local.upsert_rows(info, upserts)
    local.delete_rows(info, deletes)
    for key in refetch:
        local.drop_change(info.name, key)
    return len(upserts) + len(deletes)
