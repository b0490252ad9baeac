"""Agents that connect as editors, not as the tables' owner, reserve their key blocks
through a function that runs as its owner; the capture works in a schema of its own.

Revision ID: c0006
Revises: c0005
Create Date: 2026-12-02

An agent reserves a block of keys for the rows its analyst digitises offline. When a
sequence feeds the key, the block comes out of that sequence: the agent raises the
sequence's increment, takes one value and sets the increment back, so that no other
writer's ``nextval`` lands in the block. ``ALTER SEQUENCE`` is for the sequence's owner
only, so an analyst's role that may edit the county's tables, but does not own them,
could not sync at all.

The bookkeeping's functions pin their search path to the bookkeeping's schema and
``pg_catalog`` (every writer has a search path of its own). With the county's tables in
a schema other than PostGIS's (``central.schema = "gis"``, PostGIS in ``public``), the
capture could not name the geometry type: every write to a synced table failed, the
assessment system's too.

PostgreSQL
----------
``tf_reserve_keys(seq, size)`` does those three steps as the role that ran
``init-central`` (SECURITY DEFINER, its search path fixed) and returns the block's last
value. It checks, first, that the role calling it (``session_user``) may use the
sequence, so it reserves nothing for a role that could not take the values itself, and
that the sequence is the one behind the key of a table whose changes are captured (not
the bookkeeping's own: exhausting those would stop every write); a block holds at most
what the agent asks for (100, 10,000 or 1,000,000 keys by the sequence's type). The
sequence's own increment is put back afterwards, whatever it was. Every role may call
it (``EXECUTE`` is granted to ``PUBLIC``, as for any new function).

Every bookkeeping function's pinned search path is now ``pg_catalog``, the bookkeeping's
schema, the PostGIS extension's schema and ``pg_temp``, in that order: the functions run
as their owner, so ``pg_catalog`` comes first and ``pg_temp`` last (a function or a
temporary table of the writer's cannot stand in for one they use). ``tf_track`` gives
each table's capture function its own path, and every tracked table is tracked again,
so its capture statement is generated where the geometry type is known.

SQLite (the embedded central)
-----------------------------
Nothing: SQLite has no roles, no sequences and no search path.
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "c0006"
down_revision = "c0005"
branch_labels = None
depends_on = None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


#: the largest block one call may reserve, by the sequence's type (the agent's own blocks)
_LARGEST_BLOCK = {"int2": 100, "int4": 10_000, "int8": 1_000_000}

_RESERVE_KEYS = """
    CREATE FUNCTION tf_reserve_keys(seq regclass, size bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    DECLARE
      step bigint;
      largest bigint;
      last bigint;
    BEGIN
      IF NOT has_sequence_privilege(session_user, seq, 'USAGE')
         AND NOT has_sequence_privilege(session_user, seq, 'UPDATE') THEN
        RAISE EXCEPTION 'permission denied for sequence %', seq
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      -- only the sequence behind the key of a table whose changes are captured: not the
      -- bookkeeping's own, whose exhaustion would stop every write
      IF NOT EXISTS (
          SELECT FROM pg_depend d
          JOIN pg_trigger tg ON tg.tgrelid = d.refobjid AND tg.tgname = 'tf_capture_ins'
          JOIN pg_index i ON i.indrelid = d.refobjid AND i.indisprimary
          WHERE d.classid = 'pg_class'::regclass AND d.objid = seq
            AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
            AND d.refobjsubid = ANY(i.indkey)) THEN
        RAISE EXCEPTION 'sequence % is not the key of a synced table', seq
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      SELECT s.seqincrement, CASE s.seqtypid WHEN 'int2'::regtype THEN %(int2)s
                                             WHEN 'int4'::regtype THEN %(int4)s
                                             ELSE %(int8)s END
        INTO step, largest FROM pg_sequence s WHERE s.seqrelid = seq;
      IF size < 1 OR size > largest THEN
        RAISE EXCEPTION 'a block of keys of % holds 1 to % keys, not %', seq, largest, size
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      -- ALTER SEQUENCE holds the sequence until the transaction ends: no other
      -- nextval can fall inside the block
      EXECUTE format('ALTER SEQUENCE %s INCREMENT BY %s', seq, size);
      last := nextval(seq);
      EXECUTE format('ALTER SEQUENCE %s INCREMENT BY %s', seq, step);
      RETURN last;
    END
    $fn$""".replace("%(int2)s", str(_LARGEST_BLOCK["int2"])).replace(
        "%(int4)s", str(_LARGEST_BLOCK["int4"])).replace("%(int8)s", str(_LARGEST_BLOCK["int8"]))


def _track() -> str:
    """c0004's ``tf_track``, giving each table's capture function the search path
    ``tf_track`` itself runs with (see the module docstring)."""
    source = Path(__file__).with_name("0004_history.py")
    spec = importlib.util.spec_from_file_location("tf_c0004", source)
    assert spec is not None and spec.loader is not None
    c0004 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(c0004)
    [statement] = [s for s in c0004._postgresql("public") if "FUNCTION tf_track(" in s]
    out = statement.replace("CREATE FUNCTION tf_track(", "CREATE OR REPLACE FUNCTION tf_track(")
    old = "'SET search_path = %I, pg_catalog %s AS %L', fn, current_schema(),"
    new = "'SET search_path = %s %s AS %L', fn, current_setting('search_path'),"
    assert old in out
    # the capture function goes beside its table (and the bookkeeping): with pg_catalog
    # first in the path, current_schema() names pg_catalog
    name_old = "format('%I.%I', current_schema(), 'tf_capture_'"
    name_new = ("format('%I.%I', (SELECT n.nspname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.oid = rel), 'tf_capture_'")
    assert name_old in out
    # its own path is set below, with the others'
    return out.replace(old, new).replace(name_old, name_new).replace(
        'SET search_path = "public", pg_catalog', "")


_OURS = """
    SELECT p.oid::regprocedure::text FROM pg_proc p
    WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
      AND p.proname LIKE 'tf\\_%' AND EXISTS (
        SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%')"""

_TRACK_AGAIN = """
    DO $$ DECLARE r record; BEGIN
      FOR r IN SELECT tg.tgrelid AS rel, array_agg(a.attname::text
                 ORDER BY array_position(i.indkey, a.attnum)) AS pk
               FROM pg_trigger tg
               JOIN pg_class c ON c.oid = tg.tgrelid
               JOIN pg_index i ON i.indrelid = tg.tgrelid AND i.indisprimary
               JOIN pg_attribute a ON a.attrelid = tg.tgrelid AND a.attnum = ANY(i.indkey)
               WHERE tg.tgname = 'tf_capture_ins'
                 AND c.relnamespace = (SELECT oid FROM pg_namespace
                                       WHERE nspname = current_schema())
               GROUP BY tg.tgrelid
      LOOP
        PERFORM tf_track(r.rel, r.pk, tf_history_tracked(r.rel));
      END LOOP;
    END $$"""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    raw = bind.connection.driver_connection
    schema, postgis = raw.execute(
        "SELECT current_schema(), (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
        "ON n.oid = e.extnamespace WHERE e.extname = 'postgis')").fetchone()
    # pg_catalog first and pg_temp last: nobody's function or temporary table can stand
    # in for what these functions use, which run as their owner
    path = ", ".join(dict.fromkeys(
        ["pg_catalog", _ident(schema), *([_ident(postgis)] if postgis else []), "pg_temp"]))
    raw.execute(_RESERVE_KEYS)
    raw.execute(_track())
    for (function,) in raw.execute(_OURS).fetchall() + [("tf_track(regclass,text[],boolean)",)]:
        if not function.startswith("tf_reserve_keys("):
            raw.execute(f"ALTER FUNCTION {function} SET search_path = {path}")
    raw.execute(_TRACK_AGAIN)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # the functions keep the wider search path: it only adds PostGIS's schema
    bind.connection.driver_connection.execute(
        "DROP FUNCTION tf_reserve_keys(regclass, bigint)")
