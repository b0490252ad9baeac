"""Three-way reconciliation of one locally edited row, and conflict resolution.

For each captured local edit the push compares three versions of the row: the *base*
(as last synced, recorded by the local trigger), the *local* row now, and the *central*
row now (locked for the push). Columns changed on one side only merge; a column changed
on both sides to different values, or a delete against an update, is a conflict that the
table's policy settles: ``manual`` records it and touches nothing centrally,
``central_wins`` / ``local_wins`` apply one side and record what was overwritten.
Nothing is overwritten without a record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from terrafusion_agent.config import Config
from terrafusion_agent.errors import NotFound, TerraFusionError
from terrafusion_agent.stores.base import TableInfo
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.stores.rows import (
    Row,
    changed_columns,
    decode_base,
    pk_json,
    rows_equal,
    same,
)


@dataclass
class Outcome:
    """What to do for one edited row, centrally and locally."""

    key: tuple
    central_insert: Optional[Row] = None
    central_update: dict[str, Any] = field(default_factory=dict)
    central_delete: bool = False
    local_upsert: Optional[Row] = None
    local_delete: bool = False
    #: the row central holds once the push commits (None: no row)
    central_after: Optional[Row] = None
    #: set when both sides changed the row incompatibly
    conflict_columns: Optional[list[str]] = None
    #: None while a conflict waits for a person; else how the policy settled it
    resolution: Optional[str] = None
    base: Optional[Row] = None
    local: Optional[Row] = None
    central: Optional[Row] = None

    @property
    def pushed_op(self) -> Optional[str]:
        if self.central_insert is not None:
            return "insert"
        if self.central_delete:
            return "delete"
        if self.central_update:
            return "update"
        return None


def reconcile(info: TableInfo, key: tuple, op: str, base: Optional[Row],
              local: Optional[Row], central: Optional[Row], policy: str) -> Outcome:
    """Decide how one captured edit reaches central (see the module docstring)."""
    o = Outcome(key, base=base, local=local, central=central, central_after=central)
    if local is None:
        op = "delete"
    if op == "delete":
        if central is None:
            return o  # already gone centrally (or a re-delivered delete)
        if base is not None and rows_equal(info, base, central):
            o.central_delete, o.central_after = True, None
            return o
        return _conflict(info, o, sorted(changed_columns(info, base, central)) or
                         list(info.column_names), policy)
    if base is None:  # inserted locally
        if central is None:
            o.central_insert = o.central_after = local
            return o
        if rows_equal(info, local, central):
            return o  # a re-delivered insert: nothing to do
        return _conflict(info, o, sorted(changed_columns(info, central, local)), policy)
    if central is None:
        return _conflict(info, o, sorted(changed_columns(info, base, local)) or
                         list(info.column_names), policy)
    mine = changed_columns(info, base, local)
    theirs = changed_columns(info, base, central)
    clash = sorted(c for c in mine & theirs if not same(info, c, local, central))
    if clash:
        return _conflict(info, o, clash, policy)
    _merge(info, o, mine, theirs)
    return o


def _merge(info: TableInfo, o: Outcome, mine: set[str], theirs: set[str]) -> None:
    """Local's changed columns go to central; central's other changes come to local."""
    local, central = o.local, o.central
    o.central_update = {c: local[c] for c in sorted(mine) if not same(info, c, local, central)}
    merged = dict(central)
    merged.update({c: local[c] for c in mine})
    o.central_after = merged
    if theirs - mine:
        o.local_upsert = merged


def _conflict(info: TableInfo, o: Outcome, columns: list[str], policy: str) -> Outcome:
    o.conflict_columns = columns
    if policy == "central_wins":
        o.resolution = "central_wins"
        if o.central is None:
            o.local_delete = True
        else:
            o.local_upsert = o.central
        o.central_after = o.central
    elif policy == "local_wins":
        o.resolution = "local_wins"
        if o.local is None:
            o.central_delete, o.central_after = True, None
        elif o.central is None:
            o.central_insert = o.central_after = o.local
        else:
            mine = changed_columns(info, o.base, o.local) if o.base else set(info.column_names)
            theirs = changed_columns(info, o.base, o.central) if o.base else set()
            _merge(info, o, mine, theirs)
    return o


# --- resolution by a person ---------------------------------------------------------------


def resolve(config: Config, conflict_id: int, keep: str) -> dict:
    """Resolve an open conflict, keeping the ``local`` or the ``central`` version.

    The choice is recorded at once and travels at the next sync: keeping local pushes the
    local row over the central one seen at detection (a central change made since is a
    new conflict, never overwritten); keeping central puts that row in the local copy
    now and fetches any newer central version at the next sync.
    """
    if keep not in ("local", "central"):
        raise TerraFusionError(f"Keep must be 'local' or 'central', not {keep!r}.")
    local = LocalStore.open_existing(config.local_path)
    try:
        conflict = local.conflict(conflict_id)
        if conflict["resolved_at"]:
            raise TerraFusionError(
                f"Conflict {conflict_id} was already resolved ({conflict['resolution']}).")
        try:
            info = local.table_info(conflict["table"])
        except NotFound:
            raise TerraFusionError(
                f"Conflict {conflict_id} is about table {conflict['table']}, which is no "
                "longer synced.") from None
        key = tuple(conflict["pk"])
        central_json = (None if conflict["central"] is None
                        else json.dumps(conflict["central"], ensure_ascii=False))
        central = decode_base(info, central_json)
        with local.writing():
            exists = bool(local.rows_by_key(info, [key]))
            if keep == "local":
                if central is None:
                    op = "insert" if exists else None
                else:
                    op = "update" if exists else "delete"
                if op is None:
                    local.drop_change(info.name, key)
                else:
                    local.conn.execute(
                        "INSERT INTO tf_local_changes (table_name, pk_json, op, base_json, "
                        "state, changed_at) VALUES (?, ?, ?, ?, 'pending', "
                        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) ON CONFLICT (table_name, "
                        "pk_json) DO UPDATE SET op = excluded.op, base_json = excluded.base_json, "
                        "state = 'pending', version = version + 1",
                        (info.name, pk_json(key), op, central_json))
            else:
                if central is None:
                    local.delete_rows(info, [key])
                else:
                    local.upsert_rows(info, [central])
                local.conn.execute(
                    "INSERT INTO tf_local_changes (table_name, pk_json, op, base_json, state, "
                    "changed_at) VALUES (?, ?, 'refetch', NULL, 'refetch', "
                    "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) ON CONFLICT (table_name, pk_json) "
                    "DO UPDATE SET op = 'refetch', base_json = NULL, state = 'refetch', "
                    "version = version + 1",
                    (info.name, pk_json(key)))
            local.resolve_conflict(conflict_id, f"keep_{keep}")
        return local.conflict(conflict_id)
    finally:
        local.close()
