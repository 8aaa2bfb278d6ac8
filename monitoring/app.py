"""The monitoring service's HTTP API: a thin adapter over the store and the drift checker.

- `POST /events`: KServe request-logger CloudEvents (binary or structured mode). 200 only once stored;
  a repeated id is acknowledged and stored once; a malformed event gets a 4xx saying what is wrong.
- `POST /feedback`: true labels for logged predictions, one object or a batch.
- `GET /quality`: live accuracy and per-class F1 over the window's feedback.
- `POST /checks` (on demand, and what a CronJob calls), `GET /checks`, `GET /reports`, `GET /reports/NAME.html|json`.
- `GET /retraining`: the runs started; `GET /retraining/EPISODE/FILE`: their data, for pipeline steps.
- `GET /metrics` (Prometheus), `GET /health`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from textclf.config import MonitorConfig
from textclf.drift_check import CheckOutcome, DriftChecker
from textclf.metrics import label_quality
from textclf.monitor_store import Feedback, MonitorStore
from textclf.monitoring.metrics import MonitorMetrics
from textclf.prediction_log import MalformedEvent, parse_event

log = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class FeedbackItem(BaseModel):
    request_id: str = Field(min_length=1, max_length=200, description="the prediction's request id (x-request-id)")
    label: str = Field(min_length=1, max_length=200, description="the true class name")
    index: int = Field(0, ge=0, description="which text of a multi-text request (0 for the first)")


class FeedbackBatch(BaseModel):
    items: list[FeedbackItem] = Field(min_length=1, max_length=10_000)


FEEDBACK_BODY = TypeAdapter(FeedbackItem | FeedbackBatch | list[FeedbackItem])


def _problems(error: ValidationError | RequestValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}" for problem in error.errors()
    )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes is over the {limit}-byte limit; send smaller batches")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body is over the {limit}-byte limit; send smaller batches")
        chunks.append(chunk)
    return b"".join(chunks)


def _record_check(metrics: MonitorMetrics, outcome: CheckOutcome) -> None:
    decision = outcome.decision
    metrics.checks.labels(decision["decision"]).inc()
    metrics.last_check.set_to_current_time()
    for name, score in decision["scores"].items():
        metrics.drift_score.labels(name).set(score["score"])
        metrics.drift_threshold.labels(name).set(score["threshold"])
    if decision["window"].get("live_accuracy") is not None:
        metrics.live_accuracy.set(decision["window"]["live_accuracy"])
    if outcome.retraining and outcome.retraining.get("started"):
        metrics.retraining_runs.inc()


def _outcome_body(outcome: CheckOutcome) -> dict[str, Any]:
    return {
        "check_id": outcome.check_id,
        **outcome.decision,
        "report": outcome.report_name or None,
        "retraining": outcome.retraining,
    }


class CheckSchedule:
    """Checks every `interval` seconds on a thread of its own; a failed check is logged and the next runs."""

    def __init__(self, checker: DriftChecker, metrics: MonitorMetrics, interval: float):
        self.checker, self.metrics, self.interval = checker, metrics, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drift-check-schedule", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                _record_check(self.metrics, self.checker.check())
            except Exception:
                log.exception("scheduled drift check failed")


def create_app(config: MonitorConfig, store: MonitorStore, checker: DriftChecker) -> FastAPI:
    metrics = MonitorMetrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        schedule = None
        if config.check_interval_seconds > 0:
            schedule = CheckSchedule(checker, metrics, config.check_interval_seconds)
            schedule.start()
        try:
            yield
        finally:
            if schedule is not None:
                await asyncio.to_thread(schedule.stop)

    app = FastAPI(
        title="textclf monitor",
        description="Prediction log sink, feedback, drift reports and guarded retraining for textclf.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _problems(error)}, status_code=422)

    @app.exception_handler(SQLAlchemyError)
    async def store_unavailable(_: Request, error: SQLAlchemyError) -> JSONResponse:
        # Not acknowledged, so the sender may retry: nothing was stored.
        log.error("store error: %s", error)
        return JSONResponse({"error": "the prediction store is unavailable; retry later"}, status_code=503)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(
            {"error": f"{type(error).__name__}: {error} (details in the monitor's log)"}, status_code=500
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    @app.post("/events", summary="Store a request-logger CloudEvent (binary or structured mode)")
    async def events(request: Request) -> JSONResponse:
        body = await _read_body(request, config.max_event_bytes)
        try:
            event = parse_event(request.headers, body)
        except MalformedEvent as error:
            metrics.malformed_events.labels("unreadable").inc()
            return JSONResponse({"error": str(error)}, status_code=400)
        outcome = await run_in_threadpool(store.add_event, event)
        if not outcome.new:
            metrics.duplicate_events.inc()
        else:
            metrics.events.labels(event.kind).inc()
        metrics.predictions.inc(outcome.predictions_added)
        answer = {"id": event.event_id, "kind": event.kind, "duplicate": not outcome.new}
        if outcome.pairing_error:
            metrics.malformed_events.labels("request_and_response_disagree").inc()
            return JSONResponse(
                {**answer, "error": f"stored, but its exchange yields no predictions: {outcome.pairing_error}"},
                status_code=422,
            )
        return JSONResponse({**answer, "predictions": outcome.predictions_added})

    @app.post("/feedback", summary="True labels for logged predictions: one object, {'items': [...]}, or a list")
    async def feedback(request: Request) -> JSONResponse:
        body = await _read_body(request, config.max_event_bytes)
        try:
            parsed = FEEDBACK_BODY.validate_json(body)
        except ValidationError as error:
            return JSONResponse(
                {"error": f"{_problems(error)}. Send {{'request_id': ..., 'label': ...}} or a list of them"},
                status_code=422,
            )
        items = parsed.items if isinstance(parsed, FeedbackBatch) else parsed
        items = items if isinstance(items, list) else [items]
        stored = [Feedback(item.request_id, item.label, item.index) for item in items]
        matched = await run_in_threadpool(store.add_feedback, stored)
        metrics.feedback.inc(len(stored))
        # Feedback for a prediction not logged yet is kept: the request logger may still be sending it.
        return JSONResponse({"stored": len(stored), "matched_predictions": matched})

    @app.get("/quality", summary="Live accuracy and per-class F1 over the latest window's feedback")
    def quality() -> dict[str, Any]:
        latest = store.latest_model_version(None)
        if latest is None:
            return {"model_version": None, **label_quality([], [])}
        window = store.window(*latest, config.window_size)
        labelled = window[window["feedback_label"].notna()]
        return {
            "model_name": latest[0],
            "model_version": latest[1],
            "window": len(window),
            **label_quality(labelled["feedback_label"].tolist(), labelled["predicted_label"].tolist()),
        }

    @app.post("/checks", summary="Run a drift check now (what the schedule and the CronJob do)")
    def run_check() -> dict[str, Any]:
        outcome = checker.check()
        _record_check(metrics, outcome)
        return _outcome_body(outcome)

    @app.get("/checks", summary="The latest drift checks and their decisions")
    def list_checks(limit: int = 50) -> list[dict[str, Any]]:
        return [
            {
                "check_id": record.id,
                "checked_at": record.checked_at.isoformat(),
                "decision": record.decision,
                "reason": record.reason,
                "model_version": record.model_version,
                "report": record.report_name or None,
            }
            for record in store.checks(min(max(limit, 1), 1000))
        ]

    @app.get("/reports", summary="Saved reports (HTML and JSON) by name")
    def list_reports() -> list[dict[str, str]]:
        names = sorted({path.stem for path in checker.reports_dir.glob("check-*.json")}, reverse=True)
        return [{"name": name, "html": f"/reports/{name}.html", "json": f"/reports/{name}.json"} for name in names]

    @app.get("/reports/{filename}", summary="One saved report, as HTML or JSON")
    def report(filename: str) -> FileResponse:
        return _file(checker.reports_dir, filename, {".html", ".json"})

    @app.get("/retraining", summary="Retraining runs started, one per drift episode")
    def retraining() -> list[dict[str, Any]]:
        checker.refresh_runs()
        return store.retraining_runs()

    @app.get("/retraining/{episode}/{filename}", summary="A retraining run's data files, for its pipeline steps")
    def retraining_file(episode: str, filename: str) -> FileResponse:
        if not SAFE_NAME.match(episode):
            raise HTTPException(404, f"no retraining episode {episode!r}")
        return _file(checker.workdir / "retraining" / episode, filename, {".csv"})

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", summary="Ready when the store answers")
    def health() -> dict[str, str]:
        store.ping()
        return {"status": "ok"}

    return app


def _file(directory: Path, filename: str, suffixes: set[str]) -> FileResponse:
    path = directory / filename
    if not SAFE_NAME.match(filename) or path.suffix not in suffixes or not path.is_file():
        raise HTTPException(404, f"no file {filename!r} here; list them first")
    return FileResponse(path)
