"""The monitor store's tables and the conversions between their rows and the core's records: events as they
arrived, prediction records (the "prediction record" contract), shadow records, feedback, drift checks and
retraining runs.
Times are stored as naive UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from textclf.monitor.events import InferenceEvent, PredictionRecord, ShadowRecord

metadata = sa.MetaData()


events_table = sa.Table(
    "inference_events",
    metadata,
    sa.Column("event_id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("received_at", sa.DateTime, nullable=False, index=True),
    sa.Column("event_time", sa.DateTime, nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("pairing_error", sa.Text, nullable=True),
)


predictions_table = sa.Table(
    "predictions",
    metadata,
    sa.Column("request_id", sa.String(200), primary_key=True),
    sa.Column("index", sa.Integer, primary_key=True),
    sa.Column("time", sa.DateTime, nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(200), nullable=False, index=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("predicted_label", sa.String(200), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("probabilities", sa.Text, nullable=False),
    # When the exchange was complete here: age and the row bound are judged by it, never by the sender's clock.
    # Null in rows stored before it existed, which are judged by `time`.
    sa.Column("received_at", sa.DateTime, nullable=True, index=True),
)


shadow_table = sa.Table(
    "shadow_predictions",
    metadata,
    sa.Column("request_id", sa.String(200), primary_key=True),
    sa.Column("index", sa.Integer, primary_key=True),
    sa.Column("time", sa.DateTime, nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("champion_version", sa.String(200), nullable=False),
    sa.Column("challenger_version", sa.String(200), nullable=False, index=True),
    sa.Column("champion_label", sa.String(200), nullable=False),
    sa.Column("champion_score", sa.Float, nullable=False),
    sa.Column("challenger_label", sa.String(200), nullable=False),
    sa.Column("challenger_score", sa.Float, nullable=False),
    sa.Column("champion_ms", sa.Float, nullable=False),
    sa.Column("challenger_ms", sa.Float, nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=True, index=True),
)


feedback_table = sa.Table(
    "feedback",
    metadata,
    sa.Column("request_id", sa.String(200), primary_key=True),
    sa.Column("index", sa.Integer, primary_key=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False, index=True),
    sa.Column("source", sa.String(300), nullable=False, server_default=""),
)


checks_table = sa.Table(
    "drift_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("checked_at", sa.DateTime, nullable=False, index=True),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("result", sa.Text, nullable=False),
    sa.Column("report_name", sa.String(200), nullable=False),
)


retraining_table = sa.Table(
    "retraining_runs",
    metadata,
    sa.Column("episode_key", sa.String(300), primary_key=True),
    sa.Column("started_at", sa.DateTime, nullable=False, index=True),
    sa.Column("check_id", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("report_name", sa.String(200), nullable=False),
    sa.Column("backend", sa.String(32), nullable=False, default=""),
    sa.Column("run_id", sa.String(300), nullable=False, default=""),
    sa.Column("status", sa.String(32), nullable=False, default="claimed"),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)


def utc_naive(moment: datetime) -> datetime:
    """Stored times are naive UTC: SQLite keeps no zone, and both back ends then compare alike."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def as_utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def as_event(row: Any) -> InferenceEvent:
    return InferenceEvent(
        event_id=row.event_id,
        kind=row.kind,
        time=as_utc(row.event_time),
        model_name=row.model_name,
        model_version=row.model_version,
        payload=json.loads(row.payload),
    )


def prediction_row(record: PredictionRecord, received_at: datetime) -> dict[str, Any]:
    return {
        "received_at": utc_naive(received_at),
        "request_id": record.request_id,
        "index": record.index,
        "time": utc_naive(record.time),
        "model_name": record.model_name,
        "model_version": record.model_version,
        "text": record.text,
        "predicted_label": record.predicted_label,
        "score": record.score,
        "probabilities": json.dumps(record.probabilities),
    }


def shadow_row(record: ShadowRecord, received_at: datetime) -> dict[str, Any]:
    return {**record.__dict__, "time": utc_naive(record.time), "received_at": utc_naive(received_at)}


SHADOW_COLUMNS = [column.name for column in shadow_table.columns if column.name != "received_at"]


def shadow_frame(rows: list[Any]) -> pd.DataFrame:
    frame = pd.DataFrame([row._asdict() for row in rows], columns=[*SHADOW_COLUMNS, "feedback_label"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


WINDOW_COLUMNS = [
    "request_id",
    "index",
    "time",
    "model_name",
    "model_version",
    "text",
    "predicted_label",
    "score",
    "feedback_label",
    "feedback_at",
]


def window_frame(rows: list[Any]) -> pd.DataFrame:
    frame = pd.DataFrame([row._asdict() for row in rows], columns=[*WINDOW_COLUMNS, "probabilities"])
    frame["probabilities"] = frame["probabilities"].map(json.loads)
    for column in ("time", "feedback_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
