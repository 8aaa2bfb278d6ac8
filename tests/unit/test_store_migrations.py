"""The monitor store's schema changes through Alembic migrations: a new store is created at the newest revision,
a store from before migrations (release 0.1's tables, no version) is adopted and upgraded with its rows kept, and
starting again changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from textclf.monitor.migrations import VERSION_TABLE, current_revision, head_revision, upgrade_schema
from textclf.monitor.store import MonitorStore
from textclf.monitor.tables import metadata

pytestmark = pytest.mark.unit

# The columns release 0.1's store lacked (migration 0002).
LATER_COLUMNS = {("feedback", "source"), ("predictions", "received_at"), ("shadow_predictions", "received_at")}


def release_one_store(url: str) -> None:
    """The tables as release 0.1 created them: today's, less the columns added since."""
    old = sa.MetaData()
    for table in metadata.tables.values():
        columns = [column.copy() for column in table.columns if (table.name, column.name) not in LATER_COLUMNS]
        sa.Table(table.name, old, *columns)
    engine = sa.create_engine(url)
    old.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                'INSERT INTO feedback (request_id, "index", label, received_at) '
                "VALUES ('r1', 0, 'positive', '2026-01-01 00:00:00')"
            )
        )
    engine.dispose()


def columns(engine: sa.Engine, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns(table)}


def test_a_new_store_is_created_at_the_newest_revision(tmp_path: Path) -> None:
    store = MonitorStore(f"sqlite:///{tmp_path / 'new.db'}").create()
    with store.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    assert set(metadata.tables) <= set(sa.inspect(store.engine).get_table_names())
    with store.engine.begin() as connection:
        assert upgrade_schema(connection) == "upgraded"
        assert current_revision(connection) == head_revision()
    store.close()


def test_a_store_from_before_migrations_is_adopted_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    release_one_store(url)
    engine = sa.create_engine(url)
    assert "source" not in columns(engine, "feedback") and VERSION_TABLE not in sa.inspect(engine).get_table_names()
    with engine.begin() as connection:
        assert upgrade_schema(connection) == "adopted"
    assert all(column in columns(engine, table) for table, column in LATER_COLUMNS)
    indexes = {index["name"] for index in sa.inspect(engine).get_indexes("predictions")}
    assert "ix_predictions_received_at" in indexes
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        rows = connection.execute(sa.text("SELECT request_id, label, source FROM feedback")).all()
    assert [tuple(row) for row in rows] == [("r1", "positive", "")]
    engine.dispose()
    # The store then works as a new one does.
    store = MonitorStore(url).create()
    store.close()
