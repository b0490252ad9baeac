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
import logging
from dataclasses import dataclass, field
from typing import Any, Collection, Optional

from terrafusion_agent import faults
from terrafusion_agent.config import Config
from terrafusion_agent.errors import BadRequest, InvalidMerge, NotFound, TerraFusionError
from terrafusion_agent.stores.base import TableInfo
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.stores.rows import (
    Row,
    changed_columns,
    decode_base,
    encode_base,
    key_of,
    rows_equal,
    same,
)
from terrafusion_agent.sync.merge import chosen_values

log = logging.getLogger("terrafusion.sync")


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
    #: ``central_after`` holds the local row's values (a push of local changes only)
    after_is_local: bool = False
    #: columns this push wrote that central holds otherwise than written (read back)
    respelled: tuple[str, ...] = ()
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
            o.after_is_local = True
            return o
        if rows_equal(info, local, central):
            return o  # a re-delivered insert: nothing to do
        return _conflict(info, o, sorted(changed_columns(info, central, local)), policy)
    if central is None:
        if op == "insert":  # kept over central's delete: the row is made again
            o.central_insert = o.central_after = local
            o.after_is_local = True
            return o
        return _conflict(info, o, sorted(changed_columns(info, base, local)) or
                         list(info.column_names), policy)
    # a column central computes is central's alone: a local change to it is no edit
    mine = changed_columns(info, base, local)
    if mine & info.generated:
        log.warning("%s %s: the value typed into %s is not kept: central computes it",
                    info.name, list(key), ", ".join(sorted(mine & info.generated)))
        mine -= info.generated
    theirs = changed_columns(info, base, central)
    clash = sorted(c for c in mine & theirs if not same(info, c, local, central))
    if clash:
        return _conflict(info, o, clash, policy)
    _merge(info, o, mine, theirs)
    return o


def _merge(info: TableInfo, o: Outcome, mine: set[str], theirs: set[str]) -> None:
    """Local's changed columns go to central; central's other changes come to local."""
    local, central = o.local, o.central
    assert local is not None and central is not None  # a merge needs both rows
    o.central_update = {c: local[c] for c in sorted(mine) if not same(info, c, local, central)}
    merged = dict(central)
    merged.update({c: local[c] for c in mine})
    o.central_after = merged
    if theirs - mine or any(not same(info, c, local, central) for c in info.generated):
        o.local_upsert = merged
    else:
        # every other column is as the base on both sides: the row is the local one
        o.after_is_local = True


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
            o.after_is_local = True
        else:
            mine = (changed_columns(info, o.base, o.local) if o.base
                    else set(info.column_names)) - info.generated
            theirs = changed_columns(info, o.base, o.central) if o.base else set()
            _merge(info, o, mine, theirs)
    return o


# --- resolution by a person ---------------------------------------------------------------


def resolve(config: Config, conflict_id: int, keep: Optional[str] = None,
            merge: Optional[dict[str, Any]] = None) -> dict:
    """Resolve an open conflict or rejected row, keeping the ``local`` or ``central`` side,
    or with a per-column ``merge`` (see :mod:`terrafusion_agent.sync.merge`).

    The choice applies to what the analyst sees: the conflicting columns as detected and
    the local row as it is now. Every other local edit, also one made after detection,
    stays an edit and is merged at the next sync like any other (a column central changed
    again meanwhile is a new conflict, never an overwrite). Keeping local pushes the local
    values over the central row seen at detection; keeping central puts that row's values
    in the local copy now and fetches any newer central version at the next sync. A merge
    is either, column by column, or a value typed in: keeping central is the merge of
    every conflicting column "central", keeping local the merge of every one the analyst
    still has changed "local".
    For a rejected row, keeping local tries it again at the next sync, keeping central
    drops the local edit; a merge needs two rows, so it is refused there and for a row
    deleted on one side (InvalidMerge, like any bad merge, before anything is written).
    """
    if (keep is None) == (merge is None):
        raise BadRequest("A resolution keeps one side or merges, not both or neither.")
    if keep is not None and keep not in ("local", "central"):
        raise TerraFusionError(f"Keep must be 'local' or 'central', not {keep!r}.")
    local = LocalStore.open_existing(config.local_path)
    try:
        record = local.conflict_record(conflict_id)
        if record["resolved_at"]:
            raise TerraFusionError(
                f"Conflict {conflict_id} was already resolved ({record['resolution']}).")
        try:
            info = local.table_info(record["table"])
        except NotFound:
            raise TerraFusionError(
                f"Conflict {conflict_id} is about table {record['table']}, which is no "
                "longer synced.") from None
        key = key_of(record["pk_json"])
        central = decode_base(info, record["central_json"])
        with local.writing():
            now = local.rows_by_key(info, [key]).get(key)
            entry = local.entry(info.name, key)
            if keep is None:
                _resolve_merge(local, info, key, conflict_id, record, merge, entry, central,
                               now)
            elif record["kind"] == "rejected":
                _resolve_rejected(local, info, key, keep, entry, central)
            else:
                _resolve_conflict(local, info, key, keep, json.loads(record["columns_json"]),
                                  _base(info, entry), central, now)
            local.resolve_conflict(conflict_id, "merge" if keep is None else f"keep_{keep}")
            faults.point("resolve.before_local_commit")
        return local.conflict(conflict_id)
    finally:
        local.close()


def _base(info: TableInfo, entry: Optional[dict]) -> Optional[Row]:
    return decode_base(info, entry["base_json"]) if entry else None


def _resolve_merge(local: LocalStore, info: TableInfo, key: tuple, conflict_id: int,
                   record: dict, merge: Any, entry: Optional[dict], central: Optional[Row],
                   now: Optional[Row]) -> None:
    """A per-column merge, checked before anything is written (InvalidMerge)."""
    if record["kind"] == "rejected":
        raise InvalidMerge(
            f"Conflict {conflict_id} is a row central refused, with nothing to merge; try "
            "it again or drop the edit instead (--keep local|central).")
    if central is None or now is None:
        raise InvalidMerge(
            f"Conflict {conflict_id} is about a row deleted "
            f"{'centrally' if central is None else 'locally'}, so there are no two rows to "
            "merge; keep one side instead (--keep local|central).")
    columns = json.loads(record["columns_json"])
    chosen = chosen_values(info, conflict_id, merge, columns, now, central,
                           local.geometry_from_wkt)
    _apply_merge(local, info, key, chosen, columns, _base(info, entry), central, now)


def _resolve_conflict(local: LocalStore, info: TableInfo, key: tuple, keep: str,
                      columns: list[str], base: Optional[Row], central: Optional[Row],
                      now: Optional[Row]) -> None:
    if central is not None and now is not None:
        # the merge of every conflicting column one way; keeping local takes the local
        # value of those the analyst still has changed (one set back to its value of
        # the last sync since detection is no longer the analyst's edit)
        mine = set(info.column_names) if base is None else changed_columns(info, base, now)
        chosen = ({c: now[c] for c in columns if c in mine} if keep == "local" else
                  {c: central[c] for c in columns})
        _apply_merge(local, info, key, chosen, columns, base, central, now)
    elif keep == "central":
        if central is None:
            local.delete_rows(info, [key])
        else:
            local.upsert_rows(info, [central])
        local.put_entry(info.name, key, "refetch", None, state="refetch")
    elif now is None:
        if central is None:
            local.drop_change(info.name, key)
        else:
            local.put_entry(info.name, key, "delete", encode_base(info, central))
    else:
        # the row comes back over central's delete; should somebody have made it again
        # centrally meanwhile, the base still tells whose columns changed
        local.put_entry(info.name, key, "insert", encode_base(info, base))


def _apply_merge(local: LocalStore, info: TableInfo, key: tuple, chosen: dict[str, Any],
                 columns: list[str], base: Optional[Row], central: Row, now: Row) -> None:
    """Make the local row central's row at detection with the analyst's other edits and
    the ``chosen`` values on top, and leave the edit that takes exactly the chosen
    values to central: an update whose base is that central row (see :func:`_new_base`),
    so a column central changed again since is a new conflict, never an overwrite. A
    row that ends up as central's leaves nothing to push: it is fetched again instead,
    in case central moved on since detection."""
    # the analyst's own edits: every column changed locally since the last sync
    mine = set(info.column_names) if base is None else changed_columns(info, base, now)
    decided = set(columns) | set(chosen)
    overlay = {c: now[c] for c in mine if c not in decided}
    overlay.update(chosen)
    merged = _set_local(local, info, central, now, overlay)
    if rows_equal(info, merged, central):
        local.put_entry(info.name, key, "refetch", None, state="refetch")
    else:
        local.put_entry(info.name, key, "update",
                        _new_base(info, base, central, mine, decided))


def _new_base(info: TableInfo, base: Optional[Row], central: Row, mine: set[str],
              columns: Collection[str]) -> Optional[str]:
    """The base of the edit a resolution leaves: central's row at detection, except for
    a column the analyst changed, outside the resolved ones, where central's value was
    one the local copy never showed (a row in conflict is not refreshed by pulls): that
    edit was made against the old value, which stays its base, so the next push sees
    both sides changed the column instead of overwriting central's change."""
    new = dict(central)
    if base is not None:
        new.update({c: base[c] for c in mine
                    if c not in columns and not same(info, c, base, central)})
    return encode_base(info, new)


def _set_local(local: LocalStore, info: TableInfo, central: Row, now: Row,
               overlay: dict[str, Any]) -> Row:
    """Make the local row ``central`` with ``overlay`` on top; returns that row."""
    merged = dict(central)
    merged.update(overlay)
    if not rows_equal(info, merged, now):
        local.upsert_rows(info, [merged])
    return merged


def _resolve_rejected(local: LocalStore, info: TableInfo, key: tuple, keep: str,
                      entry: Optional[dict], central: Optional[Row]) -> None:
    if keep == "local":
        if entry is not None:
            local.set_entry_state(entry["id"], "pending")
        return
    if central is None:
        local.delete_rows(info, [key])
    else:
        local.upsert_rows(info, [central])
    local.put_entry(info.name, key, "refetch", None, state="refetch")
