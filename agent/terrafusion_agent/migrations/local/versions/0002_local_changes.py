"""Local edit capture: one pending entry per edited row, with the row as it was last synced.

Revision ID: l0002
Revises: l0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "l0002"
down_revision = "l0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Filled by triggers on every synced table (QGIS or any other client editing the
    # SpatiaLite file). ``base_json`` is the row before its first edit since the last
    # sync (NULL for a row inserted locally); ``op`` is the net operation.
    op.create_table(
        "tf_local_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("pk_json", sa.Text, nullable=False),
        sa.Column("op", sa.Text, nullable=False),
        sa.Column("base_json", sa.Text),
        sa.Column("state", sa.Text, nullable=False, server_default="pending"),
        sa.Column("changed_at", sa.Text, nullable=False),
        # bumped on every capture: a push clears only the version it pushed
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.UniqueConstraint("table_name", "pk_json", name="tf_local_changes_row"),
    )
    # 1 while the agent itself writes to a synced table: its writes are not edits
    op.create_table(
        "tf_apply_guard",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("active", sa.Integer, nullable=False, server_default="0"),
    )
    op.execute("INSERT INTO tf_apply_guard (id, active) VALUES (1, 0)")
    # the block of permanent keys this agent hands to rows digitised offline
    op.create_table(
        "tf_key_alloc",
        sa.Column("table_name", sa.Text, primary_key=True),
        sa.Column("next_key", sa.Integer, nullable=False),
        sa.Column("last_key", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tf_key_alloc")
    op.drop_table("tf_apply_guard")
    op.drop_table("tf_local_changes")
