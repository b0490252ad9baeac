"""Pending local edits: what is about to leave for central, and taking an edit back.

Each captured edit (one net entry per edited row, see ``stores/capture.py``) is listed
with the columns it changes: the value as last synced (*base*) and the local value now,
geometries as WKT. An insert lists every column's local value, a delete every base
value. Edits waiting in a conflict or refused by central are listed too, with their
state; an entry waiting for central's row after "keep central" (``refetch``) is no edit
and is not listed.

Discarding an edit puts the row back as it was last synced, in one local transaction
that the capture triggers do not see (:meth:`LocalStore.writing`): an update is
reverted, a deleted row comes back, an offline insert disappears, and nothing reaches
central. The entry becomes a ``refetch`` one, so the next sync brings central's current
row: pulls leave a row with a waiting edit alone, so central may have changed it since
its base (a refused row waits through many syncs). An edit in conflict is refused here,
since a conflict has its own decision (``conflicts resolve ID --keep central``); a
refused edit may be discarded, which settles its refusal as ``discarded``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from terrafusion_agent import faults
from terrafusion_agent.config import Config
from terrafusion_agent.errors import BadRequest, InvalidArgument, NotFound, TerraFusionError
from terrafusion_agent.stores.base import Row, TableInfo
from terrafusion_agent.stores.keys import key_text, typed_key
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.stores.rows import changed_columns, decode_base, displayed
from terrafusion_agent.wkt import to_wkt

#: the states of captured edits that are edits: waiting to be pushed, waiting in a
#: conflict, refused by central
LISTED_STATES = ("pending", "conflict", "rejected")
#: what may be discarded; an edit in conflict waits for its own decision
DISCARDABLE_STATES = ("pending", "rejected")

#: one edit, named by its row: (table, key values in key column order)
Edit = tuple[str, Sequence[Any]]


def listed(local: LocalStore, limit: Optional[int] = None,
           with_geometry: bool = False) -> list[dict[str, Any]]:
    """The captured edits of the local copy, oldest first (the first ``limit``), each
    with its changed columns; ``with_geometry`` adds the row's geometry as WKT (as it is
    now, as last synced for a delete), for a map to show where the edit is."""
    entries = [(info, entry) for info in local.tables()
               for entry in local.pending(info.name, LISTED_STATES)]
    entries.sort(key=lambda pair: pair[1]["id"])
    if limit is not None:
        entries = entries[:limit]
    conflicts = local.open_conflicts_by_row()
    return [_described(local, info, entry, conflicts, with_geometry)
            for info, entry in entries]


def discard(config: Config, edits: Optional[Sequence[Edit]]) -> dict[str, Any]:
    """Discard ``edits`` (None: every edit not in conflict) in one local transaction.

    Returns ``discarded`` (each edit as :func:`listed` showed it just before) and, for
    all of them, ``conflicts_left``. The caller holds the local copy's lock. Raises
    NotFound for a table that is not synced or a row without an edit, BadRequest for a
    key that cannot be one of its table's, TerraFusionError for an edit in conflict;
    then nothing is discarded.
    """
    with LocalStore.open_existing(config.local_path) as local:
        with local.writing():
            # read inside the write transaction: an edit QGIS saved since the caller
            # listed it is discarded as it is now, and none can slip in half way
            chosen, left = _chosen(local, edits)
            conflicts = local.open_conflicts_by_row()
            done = [_described(local, info, entry, conflicts, False)
                    for info, entry in chosen]
            for info, entry in chosen:
                _restore(local, info, entry)
            faults.point("discard.before_local_commit")
    result: dict[str, Any] = {"discarded": done}
    if edits is None:
        result["conflicts_left"] = left
    return result


def check(local: LocalStore, edits: Optional[Sequence[Edit]]) -> None:
    """Raise what :func:`discard` would raise for ``edits``, without writing (an agent
    answers a bad request at once instead of after the sync it would wait for)."""
    _chosen(local, edits)


def row_name(table: str, key: tuple) -> str:
    """How a row is named to a person: ``parcels 1001``, ``sales ["A", 3]``."""
    return f"{table} {key_text(key)}"


def _chosen(local: LocalStore, edits: Optional[Sequence[Edit]]
            ) -> tuple[list[tuple[TableInfo, dict]], int]:
    """The entries to discard, oldest first, and (for all) how many wait in conflict."""
    if edits is None:
        entries = [(info, entry) for info in local.tables()
                   for entry in local.pending(info.name, LISTED_STATES)]
        entries.sort(key=lambda pair: pair[1]["id"])
        chosen = [(i, e) for i, e in entries if e["state"] in DISCARDABLE_STATES]
        return chosen, len(entries) - len(chosen)
    infos: dict[str, TableInfo] = {}
    chosen, seen = [], set()
    for table, raw in edits:
        if table not in infos:
            infos[table] = local.table_info(table)  # NotFound names it
        info = infos[table]
        try:
            key = typed_key(info, raw)
        except InvalidArgument as exc:
            # a key its table cannot have is a bad field of the discard request, which
            # POST /api/v1/pending/discard answers 422 like any other
            raise BadRequest(str(exc)) from None
        if (table, key) in seen:
            continue
        seen.add((table, key))
        entry = local.entry(table, key)
        if entry is None or entry["state"] not in LISTED_STATES:
            raise NotFound(f"There is no pending edit of {row_name(table, key)} to discard.")
        if entry["state"] not in DISCARDABLE_STATES:
            raise TerraFusionError(_in_conflict(local, table, key))
        chosen.append((info, entry))
    return chosen, 0


def _in_conflict(local: LocalStore, table: str, key: tuple) -> str:
    record = local.open_conflicts_by_row().get((table, key))
    if record is None:
        return (f"The edit of {row_name(table, key)} waits in a conflict, which has its "
                "own decision: see 'terrafusion-agent conflicts list'.")
    return (f"The edit of {row_name(table, key)} waits in conflict {record['id']}, which "
            f"has its own decision: 'terrafusion-agent conflicts resolve {record['id']} "
            "--keep central' drops your edit.")


def _restore(local: LocalStore, info: TableInfo, entry: dict) -> None:
    """The row as last synced again, and central's row fetched at the next sync."""
    key = entry["pk"]
    base = decode_base(info, entry["base_json"])
    if base is None:  # inserted here
        local.delete_rows(info, [key])
    else:  # upsert_rows keeps a decimal's exact digits beside its double
        local.upsert_rows(info, [base])
    local.put_entry(info.name, key, "refetch", None, state="refetch")
    local.settle_rejected(info.name, key, "discarded")


def _described(local: LocalStore, info: TableInfo, entry: dict,
               conflicts: dict[tuple[str, tuple], dict], with_geometry: bool
               ) -> dict[str, Any]:
    key = entry["pk"]
    base = decode_base(info, entry["base_json"])
    now = local.rows_by_key(info, [key]).get(key)
    if base is None or now is None:  # an insert shows every local value, a delete every base
        names: Sequence[str] = info.column_names
    else:
        changed = changed_columns(info, base, now)
        names = [n for n in info.column_names if n in changed]
    kinds = {c.name: c.kind for c in info.columns}
    item: dict[str, Any] = {
        "id": entry["id"], "table": info.name, "key": list(key), "op": entry["op"],
        "state": entry["state"], "changed_at": entry.get("changed_at"),
        "version": entry["version"],
        "changes": [{"column": n, "base": _shown(kinds[n], base, n),
                     "local": _shown(kinds[n], now, n)} for n in names],
    }
    record = conflicts.get((info.name, key))
    if record is not None:
        item["conflict_id"] = record["id"]
        if record["kind"] == "rejected":
            item["message"] = record["message"]
    if with_geometry:
        column = info.geometry.column if info.geometry else None
        item["geometry"] = _shown("geometry", now if now is not None else base, column) \
            if column else None
    return item


def _shown(kind: str, row: Optional[Row], column: Optional[str]) -> Any:
    value = None if row is None or column is None else row.get(column)
    if kind == "geometry" and isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return to_wkt(bytes(value))
        except ValueError:
            return bytes(value).hex().upper()  # not a geometry WKT is written for
    return displayed(value)
