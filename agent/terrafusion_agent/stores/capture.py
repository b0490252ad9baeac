"""Local change capture: triggers on every synced table of the SpatiaLite copy.

QGIS opens the file with its own connection, so the triggers use plain SQL and
SpatiaLite functions only, never a function this agent registers on its connection.
Writes the agent itself makes run with ``tf_apply_guard.active = 1`` and are not
captured.

One entry per edited row in ``tf_local_changes`` holds the net operation and the row as
it was last synced (``base_json``):

=====================  ===================================================
sequence of edits      net entry
=====================  ===================================================
insert, update...      insert (no base)
update, update...      update (base = row before the first update)
update, delete         delete (same base)
insert, delete         nothing
delete, insert         update (same base)
=====================  ===================================================

Tables with a single integer key also get permanent keys for rows digitised offline: a
row inserted without a key (SQLite would pick max+1, which another agent may pick too)
is stored under the next key of a block reserved for this agent centrally instead.

An edit of a row that central refused (state ``rejected``) makes it ``pending`` again:
the analyst fixed it, so the next sync tries it again.
"""

from __future__ import annotations

from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.sql import quote_literal as ql
from terrafusion_agent.stores.base import TableInfo
from terrafusion_agent.stores.rows import base_json_sql, pk_json_sql

#: bumped whenever the triggers below change: a local copy made by an older agent gets
#: them reinstalled when it is opened
VERSION = "2"
NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
#: a captured edit waiting for a fresh copy, or refused by central, is an edit again
REOPEN = "state = CASE state WHEN 'refetch' THEN 'pending' WHEN 'rejected' THEN 'pending' " \
    "ELSE state END"
GUARD_OFF = "(SELECT active FROM tf_apply_guard WHERE id = 1) = 0"


def trigger_names(table: str) -> list[str]:
    return [f"tf_{kind}_{table}" for kind in ("ins", "upd", "updkey", "del", "key")]


def has_key_allocation(info: TableInfo) -> bool:
    return len(info.pk) == 1 and any(
        c.name == info.pk[0] and c.kind == "integer" for c in info.columns)


def _record_insert(t: str, pk: str) -> str:
    return (
        "INSERT INTO tf_local_changes (table_name, pk_json, op, base_json, changed_at, version) "
        f"VALUES ({t}, {pk}, 'insert', NULL, {NOW}, 1) "
        "ON CONFLICT (table_name, pk_json) DO UPDATE SET "
        "op = CASE op WHEN 'delete' THEN 'update' WHEN 'refetch' THEN 'insert' ELSE op END, "
        f"{REOPEN}, "
        "changed_at = excluded.changed_at, version = version + 1;"
    )


def _record_delete(t: str, pk: str, base: str) -> str:
    where = f"table_name = {t} AND pk_json = {pk}"
    return (
        "INSERT INTO tf_local_changes (table_name, pk_json, op, base_json, changed_at, version) "
        f"SELECT {t}, {pk}, 'delete', {base}, {NOW}, 1 "
        f"WHERE NOT EXISTS (SELECT 1 FROM tf_local_changes WHERE {where});\n"
        f"  UPDATE tf_local_changes SET base_json = CASE op WHEN 'refetch' THEN {base} "
        f"ELSE base_json END, {REOPEN}, "
        f"op = 'delete', changed_at = {NOW}, "
        f"version = version + 1 WHERE {where} AND op IN ('update', 'refetch');\n"
        f"  DELETE FROM tf_local_changes WHERE {where} AND op = 'insert';"
    )


def create_sql(info: TableInfo, local_table: str) -> list[str]:
    """Statements (re)creating the capture triggers of ``info`` on ``local_table``."""
    t = ql(info.name)  # edits are logged under the central name
    table = qi(local_table)
    n = {k: qi(name) for k, name in zip(
        ("ins", "upd", "updkey", "del", "key"), trigger_names(local_table))}
    new_pk, old_pk = pk_json_sql(info, "NEW"), pk_json_sql(info, "OLD")
    old_base = base_json_sql(info, "OLD")
    stmts = drop_sql(local_table)
    stmts.append(
        f"CREATE TRIGGER {n['ins']} AFTER INSERT ON {table} "
        f"WHEN {GUARD_OFF} BEGIN\n  {_record_insert(t, new_pk)}\nEND")
    stmts.append(
        f"CREATE TRIGGER {n['upd']} AFTER UPDATE ON {table} "
        f"WHEN {GUARD_OFF} AND {old_pk} = {new_pk} BEGIN\n"
        "  INSERT INTO tf_local_changes "
        "(table_name, pk_json, op, base_json, changed_at, version) "
        f"VALUES ({t}, {new_pk}, 'update', {old_base}, {NOW}, 1) "
        "ON CONFLICT (table_name, pk_json) DO UPDATE SET "
        # a row fetched again after "keep central" and then edited: a normal edit
        "base_json = CASE op WHEN 'refetch' THEN excluded.base_json ELSE base_json END, "
        f"{REOPEN}, "
        "op = CASE op WHEN 'refetch' THEN 'update' ELSE op END, "
        "changed_at = excluded.changed_at, version = version + 1;\nEND")
    stmts.append(
        f"CREATE TRIGGER {n['updkey']} AFTER UPDATE ON {table} "
        f"WHEN {GUARD_OFF} AND {old_pk} <> {new_pk} BEGIN\n"
        f"  {_record_delete(t, old_pk, old_base)}\n  {_record_insert(t, new_pk)}\nEND")
    stmts.append(
        f"CREATE TRIGGER {n['del']} AFTER DELETE ON {table} WHEN {GUARD_OFF} BEGIN\n"
        f"  {_record_delete(t, old_pk, old_base)}\nEND")
    if has_key_allocation(info):
        pk = qi(info.pk[0])
        others = [c.name for c in info.columns if c.name != info.pk[0]]
        cols = ", ".join([pk, *(qi(c) for c in others)])
        alloc = f"FROM tf_key_alloc WHERE table_name = {t}"
        values = ", ".join([f"(SELECT next_key - 1 {alloc})", *(f"NEW.{qi(c)}" for c in others)])
        message = ql(f"TerraFusion has no offline keys left for table {info.name}; "
                     "sync once while connected to get more.")
        # SQLite shows a key it is about to assign itself as -1 in BEFORE triggers. The
        # row is inserted again with this agent's next key and the original insert is
        # dropped (RAISE(IGNORE)), so the row only ever exists under its permanent key
        # and every AFTER trigger (spatial index, capture) sees that key.
        stmts.append(
            f"CREATE TRIGGER {n['key']} BEFORE INSERT ON {table} "
            f"WHEN {GUARD_OFF} AND NEW.{pk} = -1 BEGIN\n"
            f"  SELECT RAISE(ABORT, {message}) "
            f"WHERE NOT EXISTS (SELECT 1 {alloc} AND next_key <= last_key);\n"
            f"  UPDATE tf_key_alloc SET next_key = next_key + 1 WHERE table_name = {t};\n"
            f"  INSERT INTO {table} ({cols}) VALUES ({values});\n"
            "  SELECT RAISE(IGNORE);\nEND")
    return stmts


def drop_sql(table: str) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {qi(name)}" for name in trigger_names(table)]
