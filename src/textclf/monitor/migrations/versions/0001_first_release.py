"""The store as release 0.1 created it: the tables of `textclf.monitor.tables` before the columns of 0002.

Revision ID: 0001
Revises:
"""

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing: a store is either created whole (and stamped at the newest revision) or adopted at this one."""


def downgrade() -> None:
    """Nothing to undo."""
