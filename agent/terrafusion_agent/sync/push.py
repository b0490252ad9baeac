"""Push: send the captured local edits to central in one transaction, with a receipt.

Every pending edit of every synced table goes in one central transaction, so rows
changed together in one local transaction (a parcel split: one parcel deleted, two
inserted, their sales moved) reach central together. Inside it, rows are inserted and
updated parents first and deleted children first (foreign-key order); a row central
refuses (a constraint, a trigger, a privilege) is set aside as *rejected* with the
server's message and the rest goes through.

The transaction also writes a *receipt*: per row, which captured edit (and version) it
pushed, the row central then holds and any conflict it recorded. The batch's id is
recorded locally before the central transaction and removed by the local settle that
follows the commit. If the agent dies in between, the next sync finds the id, reads the
receipt from central and settles exactly what was committed (:func:`settle_unacknowledged`)
before anything else: a later local edit of a pushed row is rebased onto the pushed row,
never compared with a stale base.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import threading
import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Optional

from terrafusion_agent import faults
from terrafusion_agent.config import Config
from terrafusion_agent.errors import NotFound, SyncCancelled
from terrafusion_agent.stores.base import CentralStore, TableInfo, WriteSession
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.stores.rows import (
    Row,
    decode_base,
    encode_base,
    rows_equal,
    same,
    to_decimal,
)
from terrafusion_agent.sync.conflicts import Outcome, reconcile
from terrafusion_agent.sync.reader import floor_after_push, record_floor

log = logging.getLogger("terrafusion.sync")
#: keys read, locked and compared per step (a stop request is honoured between steps)
BATCH = 20_000
#: outcomes per part of a receipt
RECEIPT_PART = 2000
#: a refused step of at most this many rows is tried row by row (see :func:`_apply`)
ROW_BY_ROW = 8


def push(central: CentralStore, local: LocalStore, infos: dict[str, TableInfo], agent_id: str,
         config: Config, summary: dict, stop: Optional[threading.Event] = None,
         progress: Optional[Callable[[str, int, int], None]] = None) -> None:
    queue = {name: local.pending(name) for name in infos}
    if not any(queue.values()):
        return
    order = central.dependency_order(list(infos))
    batch_id = uuid.uuid4().hex
    local.begin_batch(batch_id)
    records: list[dict] = []
    with central.write_session(agent_id) as ws:
        planned: list[tuple[TableInfo, list[tuple[dict, Outcome]]]] = []
        for name in order:  # one fixed order: agents lock rows without deadlocking
            info, entries = infos[name], queue[name]
            pairs: list[tuple[dict, Outcome]] = []
            for start in range(0, len(entries), BATCH):
                if stop is not None and stop.is_set():
                    raise SyncCancelled("The sync was stopped before it finished pushing.")
                chunk = entries[start:start + BATCH]
                keys = [e["pk"] for e in chunk]
                local_rows = local.rows_by_key(info, keys)
                central_rows = ws.lock_rows(info, keys)
                policy = config.policy_for(name)
                pairs += [(e, reconcile(info, e["pk"], e["op"], decode_base(info, e["base_json"]),
                                        local_rows.get(e["pk"]), central_rows.get(e["pk"]),
                                        policy)) for e in chunk]
                if progress:
                    progress(name, min(start + BATCH, len(entries)), len(entries))
            planned.append((info, pairs))
        refused = _write(ws, planned)
        _read_back_computed(ws, planned, refused)
        for info, pairs in planned:
            records += [_record(info, e, o, refused.get((info.name, o.key)))
                        for e, o in pairs]
        ws.record_receipt(batch_id, [
            json.dumps(records[i:i + RECEIPT_PART], ensure_ascii=False)
            for i in range(0, len(records), RECEIPT_PART)])
        faults.point("push.before_central_commit")
    faults.point("push.after_central_commit")
    # the rows each record names, as this process still holds them: no decoding
    decoded = [(o.local, o.central_after) for _, pairs in planned for _, o in pairs]
    floor = floor_after_push(config, central)
    with local.writing():
        by_name = {info.name: info for info, _ in planned}
        _settle_all(local, by_name.get, records, summary, decoded)
        local.end_batch(batch_id)
        record_floor(local, floor)  # in the transaction that makes local reflect the push
        faults.point("push.before_local_commit")
    faults.point("push.after_local_commit")
    central.clear_receipts(agent_id)


def _write(ws: WriteSession, planned: list[tuple[TableInfo, list[tuple[dict, Outcome]]]]
           ) -> dict[tuple[str, tuple], str]:
    """Write every outcome centrally; returns the refused rows with the server's message.

    Inserts and updates go parents first, deletes children first. A row refused in an
    earlier step is tried once more at the end (it may have waited for a delete, such as
    a unique value moving from a deleted row to a new one) before it counts as refused.
    """
    steps: list[tuple[str, TableInfo, list[Outcome]]] = []
    for info, pairs in planned:
        steps.append(("insert", info, [o for _, o in pairs if o.central_insert is not None]))
    for info, pairs in planned:
        steps.append(("update", info, [o for _, o in pairs if o.central_update]))
    for info, pairs in reversed(planned):
        steps.append(("delete", info, [o for _, o in pairs if o.central_delete]))
    refused: dict[tuple[str, tuple], tuple[str, TableInfo, Outcome, str]] = {}
    for op, info, outcomes in steps:
        for o, message in _apply(ws, op, info, outcomes):
            refused[(info.name, o.key)] = (op, info, o, message)
    for (name, key), (op, info, o, _) in list(refused.items()):
        if not _apply(ws, op, info, [o]):
            del refused[(name, key)]
    return {k: v[3] for k, v in refused.items()}


def _read_back_computed(ws: WriteSession,
                        planned: list[tuple[TableInfo, list[tuple[dict, Outcome]]]],
                        refused: dict[tuple[str, tuple], str]) -> None:
    """Where central computes or rewrites what it is given, the row it holds after the
    write is read back, not foretold: a changed geometry changes a generated acreage,
    ``2026-1-5`` becomes ``2026-01-05``, JSON loses its spaces, ``10.0.0.2`` becomes
    ``10.0.0.2/32``, 1234.567 in a ``numeric(14,2)`` becomes 1234.57. The local copy then
    takes that row, so the next edit's base is what central holds (a base in the
    analyst's spelling would make the next change of that column on central's side
    look like a conflict)."""
    for info, pairs in planned:
        spelled = _spelled_by_central(info)
        numbers = {c.name: c.db_type or "" for c in info.columns
                   if c.kind in ("real", "decimal")}
        written = [o for _, o in pairs if (info.name, o.key) not in refused
                   and _may_be_rewritten(info, spelled, numbers, o)]
        for start in range(0, len(written), BATCH):
            chunk = written[start:start + BATCH]
            now = ws.lock_rows(info, [o.key for o in chunk])
            for o in chunk:
                after = now.get(o.key)
                if after is None or rows_equal(info, after, o.central_after):
                    continue
                sent = o.central_insert if o.central_insert is not None else o.central_update
                o.respelled = tuple(c for c in sent if not same(info, c, after, sent))
                o.central_after, o.after_is_local = after, False
                if not o.local_delete:
                    o.local_upsert = after


#: central types whose values come back exactly as written
_VERBATIM_TYPE = re.compile(r"^(text|character varying(\(\d+\))?)$")
_NUMERIC_SCALE = re.compile(r"^numeric\(\d+,\s*(\d+)\)$")


def _spelled_by_central(info: TableInfo) -> frozenset[str]:
    """The columns whose every written value central may spell its own way: dates and
    times, and text of any type but text and varchar (JSON, arrays, network addresses,
    UUIDs, enums...)."""
    return frozenset(
        c.name for c in info.columns
        if c.kind in ("date", "datetime")
        or (c.kind == "text" and not _VERBATIM_TYPE.match(c.db_type or "text")))


def _may_be_rewritten(info: TableInfo, spelled: frozenset[str], numbers: dict[str, str],
                      o: Outcome) -> bool:
    """Whether central may hold a row of this push otherwise than it was written: any
    write to a table with generated columns, a value in a column central spells, a
    number with more digits than its column keeps (``numbers``: the table's number
    columns and their central types, gathered once per table)."""
    if o.pushed_op not in ("insert", "update"):
        return False
    if info.generated:
        return True
    sent = o.central_insert if o.central_insert is not None else o.central_update
    if spelled & set(sent):
        return True
    return any(_rounded(numbers[name], value) for name, value in sent.items()
               if name in numbers)


def _rounded(db_type: str, value: object) -> bool:
    """Whether central stores ``value`` rounded in a column of ``db_type``: a
    ``numeric(p,s)`` keeps s decimals, a ``real`` a single-precision float."""
    if value is None or isinstance(value, bool):
        return False
    if db_type == "real" and isinstance(value, float):
        return value == value and struct.unpack("<f", struct.pack("<f", value))[0] != value
    scale = _NUMERIC_SCALE.match(db_type)
    if scale is None:
        return False
    exact = to_decimal(value)
    return isinstance(exact, Decimal) and exact.is_finite() and \
        exact != exact.quantize(Decimal(1).scaleb(-int(scale.group(1))), rounding=ROUND_HALF_UP)


def _apply(ws: WriteSession, op: str, info: TableInfo, outcomes: list[Outcome]
           ) -> list[tuple[Outcome, str]]:
    """Apply one step in a savepoint; when central refuses it, each half again, down to
    row by row, to find which rows it refuses (one bad row among a hundred thousand
    costs a few dozen statements, not a hundred thousand). The rows keep their order,
    so a row that fails only after an earlier one fails as it would row by row.
    Returns the refused rows with the server's message."""
    if not outcomes:
        return []
    try:
        with ws.savepoint():
            _step(ws, op, info, outcomes)
        return []
    except Exception as exc:  # noqa: BLE001 - refusal() decides, anything else re-raises
        message = ws.refusal(exc)
        if message is None:
            raise
        if len(outcomes) == 1:
            return [(outcomes[0], message)]
    if len(outcomes) > ROW_BY_ROW:
        half = len(outcomes) // 2
        return (_apply(ws, op, info, outcomes[:half])
                + _apply(ws, op, info, outcomes[half:]))
    out = []
    for o in outcomes:
        try:
            with ws.savepoint():
                _step(ws, op, info, [o])
        except Exception as exc:  # noqa: BLE001 - as above
            message = ws.refusal(exc)
            if message is None:
                raise
            out.append((o, message))
    return out


def _step(ws: WriteSession, op: str, info: TableInfo, outcomes: list[Outcome]) -> None:
    if op == "insert":
        ws.insert(info, [o.central_insert for o in outcomes if o.central_insert is not None])
    elif op == "update":
        ws.update(info, [(o.key, o.central_update) for o in outcomes])
    else:
        ws.delete(info, [o.key for o in outcomes])


def _record(info: TableInfo, entry: dict, o: Outcome, refused: Optional[str]) -> dict:
    """One row of the receipt: everything the local settle needs, as JSON."""
    apply = None
    if o.local_delete:
        apply = "delete"
    elif o.local_upsert is not None:
        apply = "upsert"
    record: dict[str, Any] = {
        "t": info.name, "k": list(o.key), "e": entry["id"], "v": entry["version"],
        "l0": encode_base(info, o.local),
    }
    if o.after_is_local:
        record["after_l0"] = 1  # central's row after is l0: half the receipt of a mass push
    else:
        record["after"] = encode_base(info, o.central_after)
    if o.respelled:
        record["rw"] = list(o.respelled)
    if refused is not None:
        record.update(rejected=refused, base=entry["base_json"],
                      central=encode_base(info, o.central))
        return record
    record.update(op=o.pushed_op, apply=apply)
    if o.conflict_columns is not None:
        record.update(conflict=o.conflict_columns, resolution=o.resolution,
                      base=encode_base(info, o.base), central=encode_base(info, o.central))
    return record


class _Writes:
    """The local writes of a settle that most rows share, gathered and made at the
    end in a few statements per table (a mass push settles a hundred thousand rows)."""

    def __init__(self) -> None:
        self.upserts: dict[str, tuple[TableInfo, list[Row]]] = {}
        self.deletes: dict[str, tuple[TableInfo, list[tuple]]] = {}
        self.entries: list[int] = []

    def flush(self, local: LocalStore) -> None:
        for info, rows in self.upserts.values():
            local.upsert_rows(info, rows)
        for info, keys in self.deletes.values():
            local.delete_rows(info, keys)
        local.delete_entries(self.entries)


def _settle_all(local: LocalStore, info_of: Callable[[str], Optional[TableInfo]],
                records: list[dict], summary: dict,
                decoded: Optional[list[tuple[Optional[Row], Optional[Row]]]] = None) -> int:
    """Settle ``records`` (inside ``local.writing()``); ``decoded``: the pushed local
    row and central's row after of each, when still at hand. Returns how many."""
    refused_before = local.open_rejected_keys()
    entries: dict[str, dict[tuple, dict]] = {}
    writes = _Writes()
    settled = 0
    for i, record in enumerate(records):
        info = info_of(record["t"])
        if info is None:  # no longer synced
            continue
        if info.name not in entries:
            entries[info.name] = local.entries(info.name)
        settle(local, info, record, summary, refused_before,
               entries[info.name].get(tuple(record["k"])), writes,
               decoded[i] if decoded is not None else None)
        settled += 1
    writes.flush(local)
    return settled


def settle(local: LocalStore, info: TableInfo, record: dict, summary: dict,
           refused_before: set[tuple[str, tuple]], entry: Optional[dict], writes: _Writes,
           rows: Optional[tuple[Optional[Row], Optional[Row]]] = None) -> None:
    """The local side of one pushed row (inside ``local.writing()``), from its receipt.
    ``refused_before``: the rows with an open refusal (:meth:`LocalStore.open_rejected_keys`),
    read once per batch rather than looked up for every row; ``entry``: the row's
    captured edit now (None: none); ``writes``: where the common writes are gathered;
    ``rows``: the receipt's ``l0`` and ``after`` rows, when not to be decoded."""
    key = tuple(record["k"])
    untouched = (entry is not None and entry["id"] == record["e"]
                 and entry["version"] == record["v"])
    if rows is not None:
        pushed_local, after = rows
    else:
        pushed_local = decode_base(info, record["l0"])
        after = pushed_local if "after_l0" in record else decode_base(info, record["after"])
    if "rejected" in record:
        summary["rejected"] = summary.get("rejected", 0) + 1
        local.record_rejected(info, key, record["rejected"], decode_base(info, record["base"]),
                              pushed_local, decode_base(info, record["central"]))
        if entry is not None and untouched:
            local.set_entry_state(entry["id"], "rejected")
        return  # an edit made since stays pending: the next sync tries it
    if record["op"]:
        summary["rows"]["push"][record["op"]] += 1
        summary["pushed"] += 1
    if record.get("conflict") is not None:
        summary["conflicts"] += 1
        local.record_conflict(info, key, record["conflict"], decode_base(info, record["base"]),
                              pushed_local, decode_base(info, record["central"]),
                              resolution=record["resolution"])
        if record["resolution"] is None:  # manual: wait for a person, touch nothing
            if entry is not None:
                local.set_entry_state(entry["id"], "conflict")
            return
        log.info("conflict on %s %s settled by policy %s", info.name, key,
                 record["resolution"])
    if (info.name, key) in refused_before:
        local.settle_rejected(info.name, key)
    if entry is not None and untouched:
        if record["apply"] == "delete":
            writes.deletes.setdefault(info.name, (info, []))[1].append(key)
        elif record["apply"] == "upsert":
            assert after is not None  # the receipt of an upsert holds the row
            writes.upserts.setdefault(info.name, (info, []))[1].append(after)
        writes.entries.append(entry["id"])
        return
    _rebase(local, info, key, pushed_local, after, frozenset(record.get("rw", ())))


def _rebase(local: LocalStore, info: TableInfo, key: tuple, pushed_local: Optional[Row],
            after: Optional[Row], respelled: frozenset[str] = frozenset()) -> None:
    """The row was edited locally after the push read it (``pushed_local``): the later
    edit becomes an edit of the row central now holds (``after``), merged and
    conflict-checked at the next push like any other edit.

    Its base is ``after``, except where central holds a value the analyst never saw (a
    central change this push merged, which the local copy was still to receive): a
    later edit of such a column, or a delete of the row, was made against the old
    value, so that value stays its base and the next push sees both sides changed it.
    A column this push wrote and central spelled its own way (``respelled``: read back)
    was seen: its base is central's spelling.
    """
    now = local.rows_by_key(info, [key]).get(key)
    if now is None:  # deleted locally since
        if after is None:
            local.drop_change(info.name, key)
        else:
            seen = after if pushed_local is None else pushed_local
            local.put_entry(info.name, key, "delete", encode_base(info, seen))
        return
    if after is None:
        if pushed_local is None:  # this push deleted it; the row was made again since
            local.put_entry(info.name, key, "insert", None)
        else:  # a policy removed it: the later edit now stands against that delete
            local.put_entry(info.name, key, "update", encode_base(info, pushed_local))
        return
    later = [c.name for c in info.columns
             if pushed_local is None or not same(info, c.name, pushed_local, now)]
    merged = dict(after)
    merged.update({c: now[c] for c in later})
    if any(not same(info, c.name, merged, now) for c in info.columns):
        local.upsert_rows(info, [merged])
    base = dict(after)
    if pushed_local is not None:
        base.update({c: pushed_local[c] for c in later
                     if c not in respelled and not same(info, c, pushed_local, after)})
    local.put_entry(info.name, key, "update", encode_base(info, base))


def settle_unacknowledged(central: CentralStore, local: LocalStore, agent_id: str,
                          summary: dict) -> None:
    """Settle push batches that an earlier run committed centrally but died before
    settling locally (their ids are still recorded locally), from central's receipts.
    A batch without a receipt never committed: its edits are still pending as they were."""
    batches = local.batches_in_flight()
    if not batches:
        return
    receipts = central.receipts(agent_id, batches)
    infos: dict[str, Optional[TableInfo]] = {}

    def info_of(name: str) -> Optional[TableInfo]:
        if name not in infos:
            try:
                infos[name] = local.table_info(name)
            except NotFound:  # no longer synced
                infos[name] = None
        return infos[name]

    settled = 0
    with local.writing():
        for batch_id in batches:  # one after the other: a later one sees what one settled
            records = [record for part in receipts.get(batch_id, [])
                       for record in json.loads(part)]
            settled += _settle_all(local, info_of, records, summary)
            local.end_batch(batch_id)
        record_floor(local, None)  # the push is long past: the next pull reads the primary
        faults.point("settle.before_local_commit")
    if settled:
        log.info("settled %d pushed rows of an interrupted sync from central's receipt",
                 settled)
    central.clear_receipts(agent_id)
