"""Central change capture: the change log, its trigger function, key blocks, settings.

Revision ID: c0002
Revises: c0001
Create Date: 2026-11-26

Every synced table gets a row trigger (installed by ``init-central``, since the table list
is configuration) that appends (table, primary key, operation, origin) to
``tf_change_log``. On PostgreSQL each entry also carries the writing transaction's id, so
an agent can ask for "everything committed since my last snapshot" without missing a
transaction that took its sequence number early and committed late.
"""

import sqlalchemy as sa
from alembic import op

revision = "c0002"
down_revision = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        schema = bind.execute(sa.text("SELECT current_schema()")).scalar()
        op.execute("""
            CREATE TABLE tf_change_log (
              seq bigserial PRIMARY KEY,
              table_name text NOT NULL,
              pk jsonb NOT NULL,
              op "char" NOT NULL CHECK (op IN ('I', 'U', 'D')),
              origin text,
              tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
              changed_at timestamptz NOT NULL DEFAULT clock_timestamp())""")
        op.execute("CREATE INDEX tf_change_log_tx ON tf_change_log (tx)")
        op.execute("CREATE INDEX tf_change_log_changed_at ON tf_change_log (changed_at)")
        # The function's search_path is pinned: the assessment system, psql users and
        # agents all write with their own search_path.
        op.execute(f"""
            CREATE FUNCTION tf_capture() RETURNS trigger LANGUAGE plpgsql
            SET search_path = "{schema.replace('"', '""')}", pg_catalog AS $fn$
            DECLARE
              new_pk jsonb := '[]'::jsonb;
              old_pk jsonb := '[]'::jsonb;
              i int;
              who text := nullif(current_setting('terrafusion.origin', true), '');
            BEGIN
              IF TG_OP <> 'DELETE' THEN
                FOR i IN 0 .. TG_NARGS - 1 LOOP
                  new_pk := new_pk || jsonb_build_array(to_jsonb(NEW) -> TG_ARGV[i]);
                END LOOP;
              END IF;
              IF TG_OP <> 'INSERT' THEN
                FOR i IN 0 .. TG_NARGS - 1 LOOP
                  old_pk := old_pk || jsonb_build_array(to_jsonb(OLD) -> TG_ARGV[i]);
                END LOOP;
              END IF;
              IF TG_OP = 'INSERT' THEN
                INSERT INTO tf_change_log (table_name, pk, op, origin)
                VALUES (TG_TABLE_NAME, new_pk, 'I', who);
              ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO tf_change_log (table_name, pk, op, origin)
                VALUES (TG_TABLE_NAME, old_pk, 'D', who);
              ELSIF new_pk IS DISTINCT FROM old_pk THEN
                INSERT INTO tf_change_log (table_name, pk, op, origin)
                VALUES (TG_TABLE_NAME, old_pk, 'D', who), (TG_TABLE_NAME, new_pk, 'I', who);
              ELSIF NEW IS DISTINCT FROM OLD THEN
                INSERT INTO tf_change_log (table_name, pk, op, origin)
                VALUES (TG_TABLE_NAME, new_pk, 'U', who);
              END IF;
              RETURN NULL;
            END
            $fn$""")
        op.execute("""
            CREATE TABLE tf_settings (key text PRIMARY KEY, value text NOT NULL)""")
        op.execute("""
            CREATE TABLE tf_key_blocks (
              id bigserial PRIMARY KEY, table_name text NOT NULL, agent_id text NOT NULL,
              first_key bigint NOT NULL, last_key bigint NOT NULL,
              allocated_at timestamptz NOT NULL DEFAULT now())""")
    else:
        op.execute("""
            CREATE TABLE tf_change_log (
              seq INTEGER PRIMARY KEY AUTOINCREMENT,
              table_name TEXT NOT NULL,
              pk TEXT NOT NULL,
              op TEXT NOT NULL CHECK (op IN ('I', 'U', 'D')),
              origin TEXT,
              changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))""")
        op.execute("CREATE INDEX tf_change_log_changed_at ON tf_change_log (changed_at)")
        # SQLite has no session variables: an agent writes its id here inside its push
        # transaction (SQLite has one writer at a time) and clears it before commit.
        op.execute("CREATE TABLE tf_origin (id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT)")
        op.execute("INSERT INTO tf_origin (id, origin) VALUES (1, NULL)")
        op.execute("CREATE TABLE tf_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        op.execute("""
            CREATE TABLE tf_key_blocks (
              id INTEGER PRIMARY KEY AUTOINCREMENT, table_name TEXT NOT NULL,
              agent_id TEXT NOT NULL, first_key INTEGER NOT NULL, last_key INTEGER NOT NULL,
              allocated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))""")


def downgrade() -> None:
    op.execute("DROP TABLE tf_key_blocks")
    op.execute("DROP TABLE tf_settings")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION tf_capture() CASCADE")
    else:
        op.execute("DROP TABLE tf_origin")
    op.execute("DROP TABLE tf_change_log")
