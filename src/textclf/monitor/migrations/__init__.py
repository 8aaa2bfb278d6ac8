"""The monitor store's schema migrations (Alembic), run by `MonitorStore.create` at every start.

A new store is created from `textclf.monitor.tables` and stamped at the newest revision; a store that has a
version is upgraded; a store from before migrations (its tables, no version) gets any missing table, is stamped at
the first revision (the schema of release 0.1) and upgraded from there. The version lives in its own table, so a
database shared with MLflow (which keeps `alembic_version`) keeps both. A schema change is a new file in
`versions/` (`alembic -c src/textclf/monitor/migrations/alembic.ini revision -m "..."`, then edit it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlalchemy as sa

MIGRATIONS_DIR = Path(__file__).parent
VERSION_TABLE = "textclf_monitor_version"
FIRST_REVISION = "0001"


def _config(connection: sa.Connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade_schema(connection: sa.Connection) -> str:
    """Bring the store on `connection` to the newest schema; returns what was done: created, upgraded or
    adopted (a store from before migrations)."""
    import sqlalchemy as sa
    from alembic import command

    from textclf.monitor.tables import metadata

    existing = set(sa.inspect(connection).get_table_names())
    config = _config(connection)
    if VERSION_TABLE in existing:
        command.upgrade(config, "head")
        return "upgraded"
    if not existing & set(metadata.tables):
        metadata.create_all(connection)
        command.stamp(config, "head")
        return "created"
    metadata.create_all(connection)  # tables added before migrations existed, where missing
    command.stamp(config, FIRST_REVISION)
    command.upgrade(config, "head")
    return "adopted"


def current_revision(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
