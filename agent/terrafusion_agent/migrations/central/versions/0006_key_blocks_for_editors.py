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
sequence, so it reserves nothing for a role that could not take the values itself; the
sequence's own increment is put back afterwards, whatever it was. Every role may call
it (``EXECUTE`` is granted to ``PUBLIC``, as for any new function).

Every bookkeeping function with a pinned search path now has the schema of the PostGIS
extension in it, after the bookkeeping's own; ``tf_track`` gives each table's capture
function its own path, and every tracked table is tracked again, so its capture
statement is generated where the geometry type is known.

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


def _reserve_keys(path: str) -> str:
    return f"""
    CREATE FUNCTION tf_reserve_keys(seq regclass, size bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = {path} AS $fn$
    DECLARE
      step bigint;
      last bigint;
    BEGIN
      IF NOT has_sequence_privilege(session_user, seq, 'USAGE')
         AND NOT has_sequence_privilege(session_user, seq, 'UPDATE') THEN
        RAISE EXCEPTION 'permission denied for sequence %', seq
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      IF size < 1 THEN
        RAISE EXCEPTION 'a block of keys holds at least one key, not %', size
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      SELECT seqincrement INTO step FROM pg_sequence WHERE seqrelid = seq;
      -- ALTER SEQUENCE holds the sequence until the transaction ends: no other
      -- nextval can fall inside the block
      EXECUTE format('ALTER SEQUENCE %s INCREMENT BY %s', seq, size);
      last := nextval(seq);
      EXECUTE format('ALTER SEQUENCE %s INCREMENT BY %s', seq, step);
      RETURN last;
    END
    $fn$"""


def _track() -> str:
    """c0004's ``tf_track``, giving each table's capture function the search path
    ``tf_track`` itself runs with (the bookkeeping's schema, PostGIS's, pg_catalog)."""
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
    # its own path is set below, with the others'
    return out.replace(old, new).replace('SET search_path = "public", pg_catalog', "")


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
    path = ", ".join(dict.fromkeys(
        [_ident(schema), *([_ident(postgis)] if postgis else []), "pg_catalog"]))
    raw.execute(_reserve_keys(path))
    raw.execute(_track())
    for (function,) in raw.execute(_OURS).fetchall() + [("tf_track(regclass,text[],boolean)",)]:
        raw.execute(f"ALTER FUNCTION {function} SET search_path = {path}")
    raw.execute(_TRACK_AGAIN)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # the functions keep the wider search path: it only adds PostGIS's schema
    bind.connection.driver_connection.execute(
        "DROP FUNCTION tf_reserve_keys(regclass, bigint)")
