"""Where a feedback label came from, and when each prediction and shadow record was received (with their
indexes). Stores from before migrations may hold the columns already (textclf added them with ALTER TABLE), so
each is added only where missing.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RECEIVED_AT_TABLES = ("predictions", "shadow_predictions")


def _columns(table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns(table)}


def _indexes(table: str) -> set[str]:
    return {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(table)}


def upgrade() -> None:
    if "source" not in _columns("feedback"):
        op.add_column("feedback", sa.Column("source", sa.String(300), nullable=False, server_default=""))
    for table in RECEIVED_AT_TABLES:
        if "received_at" not in _columns(table):
            op.add_column(table, sa.Column("received_at", sa.DateTime, nullable=True))
        if f"ix_{table}_received_at" not in _indexes(table):
            op.create_index(f"ix_{table}_received_at", table, ["received_at"])


def downgrade() -> None:
    for table in RECEIVED_AT_TABLES:
        op.drop_index(f"ix_{table}_received_at", table_name=table)
        op.drop_column(table, "received_at")
    op.drop_column("feedback", "source")
