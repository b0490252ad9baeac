"""Push receipts: what each agent's push batch wrote, committed with the batch itself.

Revision ID: c0003
Revises: c0002
Create Date: 2026-12-01

An agent can die between a push's central commit and the local bookkeeping that follows
it. The receipt, written in the same central transaction as the rows, tells the next
sync exactly what that batch did (per row: the entry and version it pushed, the row
central then held, any conflict it recorded), so the agent settles the batch from
central's record instead of comparing a later local edit against a stale base. A
receipt is deleted once the agent has settled it.
"""

from alembic import op

revision = "c0003"
down_revision = "c0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE TABLE tf_push_receipts (
              agent_id text NOT NULL,
              batch_id text NOT NULL,
              part integer NOT NULL,
              outcomes text NOT NULL,
              committed_at timestamptz NOT NULL DEFAULT now(),
              PRIMARY KEY (agent_id, batch_id, part))""")
    else:
        op.execute("""
            CREATE TABLE tf_push_receipts (
              agent_id TEXT NOT NULL,
              batch_id TEXT NOT NULL,
              part INTEGER NOT NULL,
              outcomes TEXT NOT NULL,
              committed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
              PRIMARY KEY (agent_id, batch_id, part))""")


def downgrade() -> None:
    op.execute("DROP TABLE tf_push_receipts")
