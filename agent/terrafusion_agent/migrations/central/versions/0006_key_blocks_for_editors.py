"""Agents that connect as editors, not as the tables' owner, reserve their key blocks
through a function that runs as its owner.

Revision ID: c0006
Revises: c0005
Create Date: 2026-12-02

An agent reserves a block of keys for the rows its analyst digitises offline. When a
sequence feeds the key, the block comes out of that sequence: the agent raises the
sequence's increment, takes one value and sets the increment back, so that no other
writer's ``nextval`` lands in the block. ``ALTER SEQUENCE`` is for the sequence's owner
only, so an analyst's role that may edit the county's tables, but does not own them,
could not sync at all.

PostgreSQL
----------
``tf_reserve_keys(seq, size)`` does those three steps as the role that ran
``init-central`` (SECURITY DEFINER, its search path fixed) and returns the block's last
value. It checks, first, that the role calling it (``session_user``) may use the
sequence, so it reserves nothing for a role that could not take the values itself; the
sequence's own increment is put back afterwards, whatever it was. Every role may call
it (``EXECUTE`` is granted to ``PUBLIC``, as for any new function).

SQLite (the embedded central)
-----------------------------
Nothing: SQLite has no roles and no sequences.
"""

from alembic import op

revision = "c0006"
down_revision = "c0005"
branch_labels = None
depends_on = None


def _function(schema: str) -> str:
    path = 'SET search_path = "' + schema.replace('"', '""') + '", pg_catalog'
    return f"""
    CREATE FUNCTION tf_reserve_keys(seq regclass, size bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER {path} AS $fn$
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


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    raw = bind.connection.driver_connection
    schema = raw.execute("SELECT current_schema()").fetchone()[0]
    raw.execute(_function(schema))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.connection.driver_connection.execute(
        "DROP FUNCTION tf_reserve_keys(regclass, bigint)")
