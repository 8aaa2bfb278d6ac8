"""Alembic's environment for the monitor store: migrations run on the connection `upgrade_schema` hands over,
with the version kept in the monitor's own version table."""

from alembic import context

from textclf.monitor.migrations import VERSION_TABLE
from textclf.monitor.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
