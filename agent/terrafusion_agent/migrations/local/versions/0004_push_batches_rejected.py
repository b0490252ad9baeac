"""Push batches in flight, and rejected rows beside conflicts.

Revision ID: l0004
Revises: l0003
Create Date: 2026-12-01

``tf_push_inflight`` holds the id of a push batch from just before its central
transaction until its local settle commits: after a crash, the next sync asks central
for that batch's receipt (it committed) or finds none (it did not).

``tf_conflicts.kind`` is ``conflict`` (two writers changed the same thing) or
``rejected`` (central refused the row: a constraint, a trigger, a privilege), with the
server's ``message``.
"""

import sqlalchemy as sa
from alembic import op

revision = "l0004"
down_revision = "l0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tf_push_inflight",
        sa.Column("batch_id", sa.Text, primary_key=True),
        sa.Column("started_at", sa.Text, nullable=False),
    )
    with op.batch_alter_table("tf_conflicts") as batch:
        batch.add_column(sa.Column("kind", sa.Text, nullable=False,
                                   server_default="conflict"))
        batch.add_column(sa.Column("message", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("tf_conflicts") as batch:
        batch.drop_column("message")
        batch.drop_column("kind")
    op.drop_table("tf_push_inflight")
