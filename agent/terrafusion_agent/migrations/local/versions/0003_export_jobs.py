"""Export jobs: one row per export the agent ran or was asked to run.

Revision ID: l0003
Revises: l0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "l0003"
down_revision = "l0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tf_export_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        # pending -> running -> completed | failed | cancelled
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("table_name", sa.Text),
        sa.Column("format", sa.Text),
        sa.Column("out_path", sa.Text),
        sa.Column("preset", sa.Text),
        # the request as asked (filter, fields, CRS...), to show and to repeat it
        sa.Column("request_json", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False, server_default="api"),
        sa.Column("features", sa.Integer),
        sa.Column("bytes", sa.Integer),
        sa.Column("duration_seconds", sa.Float),
        sa.Column("error", sa.Text),
        # the process running it: a job left running by a process that died is failed
        sa.Column("pid", sa.Integer),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("started_at", sa.Text),
        sa.Column("finished_at", sa.Text),
    )
    op.create_index("tf_export_jobs_status", "tf_export_jobs", ["status"])


def downgrade() -> None:
    op.drop_index("tf_export_jobs_status", table_name="tf_export_jobs")
    op.drop_table("tf_export_jobs")
