"""Exact decimals: the digits of central numerics that their local double cannot hold.

Revision ID: l0005
Revises: l0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "l0005"
down_revision = "l0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A synced numeric column is a DOUBLE locally, so that QGIS reads it as a number.
    # When a value has more digits than a double keeps (numeric(18,6) and wider), its
    # exact digits wait here, valid while the column still holds ``approx``, the double
    # written beside them: a new value written by QGIS (or anyone) replaces them.
    # ``pk_json`` is the row's key as the capture triggers spell it (json_array).
    op.execute(
        "CREATE TABLE tf_decimals (table_name TEXT NOT NULL, pk_json TEXT NOT NULL, "
        "column_name TEXT NOT NULL, value TEXT NOT NULL, approx REAL NOT NULL, "
        "PRIMARY KEY (table_name, pk_json, column_name)) WITHOUT ROWID")


def downgrade() -> None:
    op.drop_table("tf_decimals")
