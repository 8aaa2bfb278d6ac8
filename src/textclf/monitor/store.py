"""The monitor's durable store, one SQLAlchemy URL: SQLite on one machine, PostgreSQL in a cluster.

It keeps every request-logger event as it arrived (keyed by event id and type, so a repeat is stored once),
the prediction records (the "prediction record" contract) derived once both halves of an exchange are in,
the shadow records of a shadowed request (both models' predictions, from its one shadow event),
feedback labels (accepted before or after their prediction arrives, joined when read), the drift checks, and
the retraining runs, whose unique episode key is what keeps racing checks from starting two runs. The tables
and the conversions of their rows are in `textclf.monitor.tables`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from textclf.monitor.bounds import StoreBounds
from textclf.monitor.events import InferenceEvent, MalformedEvent, prediction_records, shadow_records
from textclf.monitor.tables import (
    as_event,
    as_utc,
    checks_table,
    events_table,
    feedback_table,
    prediction_row,
    predictions_table,
    retraining_table,
    shadow_frame,
    shadow_row,
    shadow_table,
    utc_naive,
    window_frame,
)

FINISHED_RUN_STATUSES = frozenset({"succeeded", "failed"})
SENDER_CONTENT = {events_table.name: events_table.c.payload, predictions_table.name: predictions_table.c.text}
"""What senders wrote, where its size is bounded: event payloads (ASCII JSON: length is size) and texts."""
TRIM_TO = 0.9
"""A table over a bound is trimmed to this share of it: trims come once per tenth of a bound written, not at every
write."""
"""A retraining run is first "claimed" (its episode is taken), then "running" once launched, then one of these."""


@dataclass(frozen=True)
class EventOutcome:
    """What storing one event did: whether it was new, and the predictions its exchange produced (or, for a
    shadow event, the shadow records it held)."""

    new: bool
    predictions_added: int
    pairing_error: str | None = None
    shadow_added: int = 0


@dataclass(frozen=True)
class Feedback:
    request_id: str
    label: str
    index: int = 0
    source: str = ""
    """Who sent the label (the credential it came with and the client's address): poisoned labels can be traced."""


@dataclass(frozen=True)
class CheckRecord:
    id: int
    checked_at: datetime
    model_version: str
    decision: str
    reason: str
    result: dict[str, Any]
    report_name: str

    def summary(self) -> dict[str, Any]:
        """What every listing of checks shows of one (`GET /checks`, the dashboard)."""
        return {
            "check_id": self.id,
            "checked_at": self.checked_at.isoformat(),
            "decision": self.decision,
            "reason": self.reason,
            "model_version": self.model_version,
            "report": self.report_name or None,
        }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the check loop read while the sink writes; a write is on disk before it is acknowledged.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


POSTGRESQL_DRIVER = "postgresql+psycopg2"
"""The driver textclf installs (psycopg2-binary). A plain postgresql:// URL means it: SQLAlchemy 2.1 would pick
psycopg 3 for one, which no textclf installation holds."""


def create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    parsed = sa.engine.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername=POSTGRESQL_DRIVER)
    return sa.create_engine(parsed, pool_pre_ping=True)


class MonitorStore:
    def __init__(self, url: str, bounds: StoreBounds | None = None):
        self.url = url
        self.engine = create_engine(url)
        self.bounds = bounds or StoreBounds()
        self._usage: dict[str, list[int]] | None = None
        self._trimming = threading.Lock()

    def create(self) -> MonitorStore:
        """The store at the newest schema: created, upgraded by its Alembic migrations, or adopted from before
        them (`textclf.monitor.migrations`)."""
        from textclf.monitor.migrations import upgrade_schema

        with self.engine.begin() as connection:
            upgrade_schema(connection)
        return self

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()

    # ---- inserts that ignore (or update) a row whose key exists, on either back end ---------------------

    def _insert(self, table: sa.Table) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    # ---- events and predictions --------------------------------------------------------------------------

    def add_event(self, event: InferenceEvent, received_at: datetime | None = None) -> EventOutcome:
        """Store one half of an exchange (once per id and kind), then derive the exchange's predictions
        if both halves are in. The half is committed before pairing, in its own transaction: of two halves
        arriving at once, the one that commits last always sees the other, on SQLite and PostgreSQL alike."""
        received = received_at or datetime.now(UTC)
        row = {
            "event_id": event.event_id,
            "kind": event.kind,
            "received_at": utc_naive(received),
            # The sender's time, but never later than arrival: a future-dated event would otherwise be the
            # newest for good and pin every later window to it.
            "event_time": utc_naive(min(event.time, received)),
            "model_name": event.model_name,
            "model_version": event.model_version,
            "payload": json.dumps(event.payload),
        }
        if event.kind == "shadow":
            outcome = self._add_shadow(replace(event, time=min(event.time, received)), row)
        else:
            with self.engine.begin() as connection:
                inserted = connection.execute(self._insert(events_table).values(**row).on_conflict_do_nothing())
            added, error = self._pair(event.event_id)
            outcome = EventOutcome(inserted.rowcount == 1, added, error)
        size = len(row["payload"])
        # The texts of the predictions are in the request's payload: counting it (JSON around them included) can
        # only trim sooner, after which the counts are measured again.
        self._written(
            inference_events=(1, size),
            predictions=(outcome.predictions_added, size if outcome.predictions_added else 0),
            shadow_predictions=(outcome.shadow_added, 0),
        )
        return outcome

    def _add_shadow(self, event: InferenceEvent, row: dict[str, Any]) -> EventOutcome:
        """A shadow event is whole by itself: read it before storing, so an unreadable one stores nothing."""
        records = shadow_records(event)
        with self.engine.begin() as connection:
            inserted = connection.execute(self._insert(events_table).values(**row).on_conflict_do_nothing())
            added = 0
            if inserted.rowcount == 1 and records:
                result = connection.execute(
                    self._insert(shadow_table).on_conflict_do_nothing(),
                    [shadow_row(r, row["received_at"]) for r in records],
                )
                added = max(result.rowcount, 0)
        return EventOutcome(inserted.rowcount == 1, 0, shadow_added=added)

    def _pair(self, event_id: str) -> tuple[int, str | None]:
        with self.engine.begin() as connection:
            halves = {
                row.kind: row
                for row in connection.execute(sa.select(events_table).where(events_table.c.event_id == event_id))
            }
            if set(halves) != {"request", "response"}:
                return 0, None
            try:
                records = prediction_records(as_event(halves["request"]), as_event(halves["response"]))
            except MalformedEvent as error:
                connection.execute(
                    events_table.update().where(events_table.c.event_id == event_id).values(pairing_error=str(error))
                )
                return 0, str(error)
            if not records:
                return 0, None
            # Complete when its later half arrived.
            received = max(half.received_at for half in halves.values())
            result = connection.execute(
                self._insert(predictions_table).on_conflict_do_nothing(),
                [prediction_row(r, received) for r in records],
            )
            return max(result.rowcount, 0), None

    def count(self, table: sa.Table) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def event_ids(self) -> set[tuple[str, str]]:
        with self.engine.connect() as connection:
            return {
                (r.event_id, r.kind)
                for r in connection.execute(sa.select(events_table.c.event_id, events_table.c.kind))
            }

    # ---- feedback ----------------------------------------------------------------------------------------

    def add_feedback(self, items: list[Feedback], received_at: datetime | None = None) -> int:
        """Store true labels (the latest label for a prediction wins); returns how many match a stored
        prediction. Feedback for a prediction not logged yet is kept and joins it when it arrives."""
        moment = utc_naive(received_at or datetime.now(UTC))
        rows = [
            {"request_id": i.request_id, "index": i.index, "label": i.label, "received_at": moment, "source": i.source}
            for i in items
        ]
        statement = self._insert(feedback_table)
        statement = statement.on_conflict_do_update(
            index_elements=["request_id", "index"],
            set_={name: statement.excluded[name] for name in ("label", "received_at", "source")},
        )
        with self.engine.begin() as connection:
            connection.execute(statement, rows)
            keys = sa.tuple_(predictions_table.c.request_id, predictions_table.c.index)
            matched = connection.execute(
                sa.select(sa.func.count())
                .select_from(predictions_table)
                .where(keys.in_([(i.request_id, i.index) for i in items]))
            ).scalar_one()
        self._written(feedback=(len(rows), 0))
        return int(matched)

    def prediction_versions(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """The model version that made each stored prediction among `keys` (request id, index)."""
        columns = predictions_table.c
        query = sa.select(columns.request_id, columns.index, columns.model_version).where(
            sa.tuple_(columns.request_id, columns.index).in_(keys)
        )
        return {(row.request_id, row.index): row.model_version for row in self._read(query)}

    def prune(self, before: datetime) -> dict[str, int]:
        """Delete events, predictions, shadow records, feedback and checks that arrived (or were made) before
        `before`, judged by when they arrived here: a back-dated event is as young as any other."""
        cutoff = utc_naive(before)
        with self.engine.begin() as connection:
            return {
                table.name: max(connection.execute(table.delete().where(column < cutoff)).rowcount, 0)
                for table, column in self._arrival_columns()
            }

    @staticmethod
    def _arrival_columns() -> list[tuple[sa.Table, Any]]:
        """Each bounded table and when its rows arrived (rows stored before `received_at` existed: their time)."""
        return [
            (events_table, events_table.c.received_at),
            (predictions_table, sa.func.coalesce(predictions_table.c.received_at, predictions_table.c.time)),
            (shadow_table, sa.func.coalesce(shadow_table.c.received_at, shadow_table.c.time)),
            (feedback_table, feedback_table.c.received_at),
            (checks_table, checks_table.c.checked_at),
        ]

    def _limits(self) -> dict[str, tuple[int | None, int | None]]:
        """Each bounded table's most rows and most characters of what senders wrote (None: not bounded so)."""
        bounds = self.bounds
        return {
            events_table.name: (None, bounds.event_bytes),
            predictions_table.name: (bounds.predictions, bounds.prediction_text_bytes),
            shadow_table.name: (bounds.shadow_records, None),
            feedback_table.name: (bounds.feedback, None),
            checks_table.name: (bounds.checks, None),
        }

    def _measure(self) -> dict[str, list[int]]:
        """Each bounded table's rows and characters now: one scan of each."""
        usage = {}
        with self.engine.connect() as connection:
            for table, _ in self._arrival_columns():
                content = SENDER_CONTENT.get(table.name)
                size = sa.func.coalesce(sa.func.sum(sa.func.length(content)), 0) if content is not None else 0
                rows, characters = connection.execute(sa.select(sa.func.count(), size).select_from(table)).one()
                usage[table.name] = [int(rows), int(characters)]
        return usage

    def _over(self, usage: dict[str, list[int]]) -> list[str]:
        return [
            name
            for name, (rows, characters) in self._limits().items()
            if (rows is not None and usage[name][0] > rows) or (characters is not None and usage[name][1] > characters)
        ]

    def enforce_bounds(self) -> dict[str, int]:
        """Trim each table over a bound (`self.bounds`: rows, and the characters senders wrote) to TRIM_TO of it,
        the rows that arrived first going first; returns how many rows each lost. Rows that arrived at the same
        moment as the first one over go with it."""
        with self._trimming:
            over = self._over(self._measure())
            removed = {table.name: 0 for table, _ in self._arrival_columns()}
            if over:
                with self.engine.begin() as connection:
                    for table, arrived in self._arrival_columns():
                        if table.name in over:
                            removed[table.name] = self._trim(connection, table, arrived, *self._limits()[table.name])
            self._usage = self._measure()
            return removed

    @staticmethod
    def _trim(
        connection: sa.Connection, table: sa.Table, arrived: Any, rows: int | None, characters: int | None
    ) -> int:
        """Delete the rows that arrived first until TRIM_TO of each bound is left; how many went."""
        cutoffs = []
        if rows is not None:
            keep = max(1, int(rows * TRIM_TO))
            cutoffs.append(
                connection.execute(sa.select(arrived).order_by(arrived.desc()).limit(1).offset(keep)).scalar()
            )
        if characters is not None:
            newer = sa.func.sum(sa.func.length(SENDER_CONTENT[table.name])).over(order_by=arrived.desc())
            ranked = sa.select(arrived.label("arrived"), newer.label("newer")).subquery()
            cutoffs.append(
                connection.execute(
                    sa.select(sa.func.max(ranked.c.arrived)).where(ranked.c.newer > int(characters * TRIM_TO))
                ).scalar()
            )
        newest_gone = max((moment for moment in cutoffs if moment is not None), default=None)
        if newest_gone is None:
            return 0
        return max(connection.execute(table.delete().where(arrived <= newest_gone)).rowcount, 0)

    def _written(self, **added: tuple[int, int]) -> None:
        """Count rows and characters just written, by table; past a bound, trim (`enforce_bounds`). The counts
        are measured at the first write and after every trim, and only added to between: cheap per write."""
        if self._usage is None:
            self._usage = self._measure()
        for name, (rows, characters) in added.items():
            self._usage[name][0] += rows
            self._usage[name][1] += characters
        if self._over(self._usage):
            self.enforce_bounds()

    # ---- windows -----------------------------------------------------------------------------------------

    def _joined(self) -> sa.Select:
        return sa.select(
            predictions_table,
            feedback_table.c.label.label("feedback_label"),
            feedback_table.c.received_at.label("feedback_at"),
        ).select_from(
            predictions_table.outerjoin(
                feedback_table,
                sa.and_(
                    feedback_table.c.request_id == predictions_table.c.request_id,
                    feedback_table.c.index == predictions_table.c.index,
                ),
            )
        )

    def latest_model_version(self, model_name: str | None = None) -> tuple[str, str] | None:
        """(model name, version) of the most recent prediction."""
        query = sa.select(predictions_table.c.model_name, predictions_table.c.model_version)
        if model_name:
            query = query.where(predictions_table.c.model_name == model_name)
        with self.engine.connect() as connection:
            row = connection.execute(query.order_by(predictions_table.c.time.desc()).limit(1)).first()
        return (row.model_name, row.model_version) if row else None

    def window(self, model_name: str, model_version: str, size: int, since: datetime | None = None) -> pd.DataFrame:
        """The most recent `size` predictions of one model version (oldest first), with their feedback."""
        query = self._joined().where(
            predictions_table.c.model_name == model_name, predictions_table.c.model_version == model_version
        )
        if since is not None:
            query = query.where(predictions_table.c.time >= utc_naive(since))
        query = query.order_by(predictions_table.c.time.desc(), predictions_table.c.index.desc()).limit(size)
        return window_frame(self._read(query)).iloc[::-1].reset_index(drop=True)

    def labelled(self, since: datetime | None = None) -> pd.DataFrame:
        """Every prediction with a feedback label received since `since`: the training pipeline's new data."""
        query = self._joined().where(feedback_table.c.label.is_not(None))
        if since is not None:
            query = query.where(feedback_table.c.received_at >= utc_naive(since))
        return window_frame(self._read(query.order_by(predictions_table.c.time)))

    def shadow_window(self, size: int, challenger_version: str = "", model_name: str = "") -> pd.DataFrame:
        """The most recent `size` shadow records of one challenger (default: the latest one shadowed) against the
        champion it was latest compared with (oldest first), with their feedback."""
        columns = shadow_table.c
        latest = sa.select(columns.model_name, columns.champion_version, columns.challenger_version)
        if model_name:
            latest = latest.where(columns.model_name == model_name)
        if challenger_version:
            latest = latest.where(columns.challenger_version == challenger_version)
        with self.engine.connect() as connection:
            pair = connection.execute(latest.order_by(columns.time.desc()).limit(1)).first()
        if pair is None:
            return shadow_frame([])
        query = (
            sa.select(shadow_table, feedback_table.c.label.label("feedback_label"))
            .select_from(
                shadow_table.outerjoin(
                    feedback_table,
                    sa.and_(feedback_table.c.request_id == columns.request_id, feedback_table.c.index == columns.index),
                )
            )
            .where(
                columns.model_name == pair.model_name,
                columns.champion_version == pair.champion_version,
                columns.challenger_version == pair.challenger_version,
            )
            .order_by(columns.time.desc(), columns.index.desc())
            .limit(size)
        )
        return shadow_frame(self._read(query)).iloc[::-1].reset_index(drop=True)

    def traffic(self, since: datetime, limit: int) -> pd.DataFrame:
        """The newest `limit` predictions made since `since` (time, model version, predicted label), oldest first:
        what the dashboard counts requests and the class mix from."""
        columns = predictions_table.c
        query = (
            sa.select(columns.time, columns.request_id, columns.model_version, columns.predicted_label)
            .where(columns.time >= utc_naive(since))
            .order_by(columns.time.desc())
            .limit(limit)
        )
        frame = pd.DataFrame(
            [row._asdict() for row in self._read(query)],
            columns=["time", "request_id", "model_version", "predicted_label"],
        )
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        return frame.iloc[::-1].reset_index(drop=True)

    def latencies(self, since: datetime, limit: int) -> pd.DataFrame:
        """Per exchange of the newest `limit` responses received since `since`: when its response was sent and the
        milliseconds from its request's event time to its response's (the request logger's clock, both halves)."""
        request, response = events_table.alias("request"), events_table.alias("response")
        query = (
            sa.select(response.c.event_time.label("time"), request.c.event_time.label("requested"))
            .select_from(
                response.join(request, sa.and_(request.c.event_id == response.c.event_id, request.c.kind == "request"))
            )
            .where(response.c.kind == "response", response.c.received_at >= utc_naive(since))
            .order_by(response.c.received_at.desc())
            .limit(limit)
        )
        frame = pd.DataFrame([row._asdict() for row in self._read(query)], columns=["time", "requested"])
        for column in ("time", "requested"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        frame["milliseconds"] = (frame["time"] - frame["requested"]).dt.total_seconds() * 1000
        return frame[["time", "milliseconds"]].iloc[::-1].reset_index(drop=True)

    def checks_since(self, since: datetime, limit: int) -> list[CheckRecord]:
        """The newest `limit` drift checks run since `since`, oldest first (by when they ran)."""
        query = (
            sa.select(checks_table)
            .where(checks_table.c.checked_at >= utc_naive(since))
            .order_by(checks_table.c.checked_at.desc(), checks_table.c.id.desc())
            .limit(limit)
        )
        return [self._check_record(row) for row in reversed(self._read(query))]

    @staticmethod
    def _check_record(row: Any) -> CheckRecord:
        return CheckRecord(
            row.id,
            as_utc(row.checked_at),
            row.model_version,
            row.decision,
            row.reason,
            json.loads(row.result),
            row.report_name,
        )

    def _read(self, query: sa.Select) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(query))

    # ---- checks and retraining runs ----------------------------------------------------------------------

    def add_check(
        self, checked_at: datetime, model_version: str, decision: str, reason: str, result: dict, report_name: str
    ) -> int:
        with self.engine.begin() as connection:
            inserted = connection.execute(
                checks_table.insert().values(
                    checked_at=utc_naive(checked_at),
                    model_version=model_version,
                    decision=decision,
                    reason=reason,
                    result=json.dumps(result),
                    report_name=report_name,
                )
            )
            check_id = int(inserted.inserted_primary_key[0])
        self._written(drift_checks=(1, 0))
        return check_id

    def checks(self, limit: int = 100) -> list[CheckRecord]:
        rows = self._read(sa.select(checks_table).order_by(checks_table.c.id.desc()).limit(limit))
        return [self._check_record(row) for row in rows]

    def claim_retraining(self, episode_key: str, started_at: datetime, check_id: int, reason: str, report: str) -> bool:
        """Claim the drift episode for one retraining run; False when another check claimed it first."""
        row = {
            "episode_key": episode_key,
            "started_at": utc_naive(started_at),
            "check_id": check_id,
            "reason": reason,
            "report_name": report,
            "backend": "",
            "run_id": "",
            "status": "claimed",
            "detail": "",
        }
        with self.engine.begin() as connection:
            result = connection.execute(self._insert(retraining_table).values(**row).on_conflict_do_nothing())
        return result.rowcount == 1

    def update_retraining(self, episode_key: str, **values: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                retraining_table.update().where(retraining_table.c.episode_key == episode_key).values(**values)
            )

    def retraining_runs(self) -> list[dict[str, Any]]:
        rows = self._read(sa.select(retraining_table).order_by(retraining_table.c.started_at))
        return [{**row._asdict(), "started_at": as_utc(row.started_at).isoformat()} for row in rows]

    def retraining_history(self, model_name: str, model_version: str) -> tuple[int, datetime | None]:
        """Runs already started for this served version (the next episode's number) and when the latest run
        of any version started, read in one statement: a check racing another's claim sees either neither
        (and computes the same episode key, which the store refuses twice) or both (and waits the cooldown)."""
        prefix = f"{model_name}/{model_version}/"
        for_version = (
            sa.select(sa.func.count())
            .select_from(retraining_table)
            .where(retraining_table.c.episode_key.startswith(prefix, autoescape=True))
            .scalar_subquery()
        )
        latest = sa.select(sa.func.max(retraining_table.c.started_at)).scalar_subquery()
        with self.engine.connect() as connection:
            count, last = connection.execute(sa.select(for_version, latest)).one()
        return int(count), as_utc(last)
