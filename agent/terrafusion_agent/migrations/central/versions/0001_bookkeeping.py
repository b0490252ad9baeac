"""Central bookkeeping: the agents that sync with this database.

Revision ID: c0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tf_agents",
        sa.Column("agent_id", sa.Text, primary_key=True),
        sa.Column("hostname", sa.Text, nullable=False),
        sa.Column("local_path", sa.Text),
        sa.Column("version", sa.Text),
        sa.Column("registered_at", sa.Text, nullable=False),
        sa.Column("last_seen_at", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tf_agents")
