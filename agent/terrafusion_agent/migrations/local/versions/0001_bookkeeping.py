"""Local bookkeeping: identity, synced tables, sync runs and conflicts.

Revision ID: l0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "l0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tf_meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "tf_tables",
        sa.Column("table_name", sa.Text, primary_key=True),
        sa.Column("info_json", sa.Text, nullable=False),
        sa.Column("central_rows", sa.Integer),
        sa.Column("last_full_sync_at", sa.Text),
    )
    op.create_table(
        "tf_sync_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.Text, nullable=False),
        sa.Column("finished_at", sa.Text),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False, server_default="manual"),
        sa.Column("pulled", sa.Integer, nullable=False, server_default="0"),
        sa.Column("pushed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("conflicts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "tf_conflicts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("pk_json", sa.Text, nullable=False),
        sa.Column("columns_json", sa.Text, nullable=False),
        sa.Column("base_json", sa.Text),
        sa.Column("local_json", sa.Text),
        sa.Column("central_json", sa.Text),
        sa.Column("detected_at", sa.Text, nullable=False),
        sa.Column("resolved_at", sa.Text),
        sa.Column("resolution", sa.Text),
    )


def downgrade() -> None:
    for name in ("tf_conflicts", "tf_sync_runs", "tf_tables", "tf_meta"):
        op.drop_table(name)
