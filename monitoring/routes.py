"""The monitoring service's routes, one `APIRouter` over the store, the checker and the metrics it gets as
dependencies (`app.state`), so each route can be tested alone with its dependencies overridden.

- `POST /events`: KServe request-logger CloudEvents (binary or structured mode). 200 only once stored;
  a repeated id is acknowledged and stored once; a malformed event gets a 4xx saying what is wrong.
- `POST /feedback`: true labels for logged predictions, one object or a batch.
- `GET /quality`: live accuracy and per-class F1 over the window's feedback, as the drift check computes it.
- `POST /checks` (on demand, and what a CronJob calls), `GET /checks`, `GET /reports`, `GET /reports/NAME.html|json`.
- `GET /retraining`: the runs started; `GET /retraining/EPISODE/FILE`: their data, for pipeline steps.
- `GET /metrics` (Prometheus), `GET /health` (readiness: the store answers), `GET /livez` (liveness: the
  process answers; a database briefly away must not get the pod restarted).

With `write_token` set, `/events` and `/checks` need `Authorization: Bearer <write_token>`; `/feedback` takes
`feedback_token` (or `write_token`). Basic authentication with the token as password works too. KServe's agent
sends no token at all: with `events_port` set, `POST /events` on that port needs none (see `arrived_on`).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from textclf.config import MonitorConfig
from textclf.metrics import label_quality
from textclf.monitor.check import CHECK_REPORT_PREFIX, CheckOutcome, DriftChecker
from textclf.monitor.dashboard import dashboard_series
from textclf.monitor.decision import json_safe
from textclf.monitor.events import MalformedEvent, parse_event
from textclf.monitor.retraining import gate_outcomes
from textclf.monitor.shadow import compare_shadow
from textclf.monitor.store import Feedback, MonitorStore
from textclf.monitoring.checks import CheckRunner
from textclf.monitoring.prometheus import MonitorMetrics
from textclf.runtime.auth import Access, check_token

log = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def get_config(request: Request) -> MonitorConfig:
    return request.app.state.config


def get_store(request: Request) -> MonitorStore:
    return request.app.state.store


def get_checker(request: Request) -> DriftChecker:
    return request.app.state.checker


def get_metrics(request: Request) -> MonitorMetrics:
    return request.app.state.metrics


def get_checks(request: Request) -> CheckRunner:
    return request.app.state.checks


def _require(request: Request, what: str, *tokens: str) -> Access:
    access = check_token(request.headers.get("authorization"), *tokens)
    if access is Access.DENIED:
        raise HTTPException(
            401,
            f"send Authorization: Bearer <token> to {what}",
            headers={"WWW-Authenticate": 'Bearer realm="textclf-monitor"'},
        )
    return access


def arrived_on(scope: dict, port: int) -> bool:
    """Whether a request came in on `port` (uvicorn puts the listening socket's address in `server`)."""
    server = scope.get("server")
    return bool(port) and server is not None and server[1] == port


def require_writer(request: Request) -> str:
    """Events and checks change what the monitor decides: they take the write token, except events on the
    events port (`events_port`, which only the request loggers can reach). Returns the credential."""
    if arrived_on(request.scope, request.app.state.config.events_port):
        return "events-port"
    access = _require(
        request, "write (the monitor's write_token)", request.app.state.config.write_token.get_secret_value()
    )
    return "write-token" if access is Access.GRANTED else "unauthenticated"


def require_labeller(request: Request) -> str:
    """Feedback takes its own token (or the write token); returns which one came, for the label's source."""
    config: MonitorConfig = request.app.state.config
    feedback_token, write_token = config.feedback_token.get_secret_value(), config.write_token.get_secret_value()
    access = _require(
        request, "send feedback (the monitor's feedback_token or write_token)", feedback_token, write_token
    )
    if access is Access.OPEN:
        return "unauthenticated"
    presented = check_token(request.headers.get("authorization"), feedback_token)
    return "feedback-token" if presented is Access.GRANTED else "write-token"


Config = Annotated[MonitorConfig, Depends(get_config)]
Store = Annotated[MonitorStore, Depends(get_store)]
Checker = Annotated[DriftChecker, Depends(get_checker)]
Metrics = Annotated[MonitorMetrics, Depends(get_metrics)]
Checks = Annotated[CheckRunner, Depends(get_checks)]
Writer = Annotated[str, Depends(require_writer)]
Labeller = Annotated[str, Depends(require_labeller)]
router = APIRouter()
MAX_DASHBOARD_BUCKETS = 500


LABELLER_HEADER = "x-textclf-labeller"
"""The person behind a correction, as a token-holding client (the UI) names them; recorded with the label's source."""
MAX_LABELLER_CHARS = 100


def labeller_of(request: Request, credential: str) -> str:
    """The named person, when a client that presented a token names one (printable ASCII, at most
    MAX_LABELLER_CHARS); else empty. Without a token a name would be anyone's claim."""
    if credential not in ("feedback-token", "write-token"):
        return ""
    name = request.headers.get(LABELLER_HEADER, "")
    return "".join(char for char in name if " " < char <= "~")[:MAX_LABELLER_CHARS]


class FeedbackItem(BaseModel):
    request_id: str = Field(min_length=1, max_length=200, description="the prediction's request id (x-request-id)")
    label: str = Field(min_length=1, max_length=200, description="the true class name")
    index: int = Field(
        Feedback.index, ge=0, lt=2**31, description="which text of a multi-text request (0 for the first)"
    )


MAX_FEEDBACK_ITEMS = 10_000
"""Most labels one /feedback call stores, in either of its list shapes."""


class FeedbackBatch(BaseModel):
    items: list[FeedbackItem] = Field(min_length=1, max_length=MAX_FEEDBACK_ITEMS)


FEEDBACK_BODY = TypeAdapter(
    FeedbackItem | FeedbackBatch | Annotated[list[FeedbackItem], Field(max_length=MAX_FEEDBACK_ITEMS)]
)


def problems_of(error: ValidationError | RequestValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}" for problem in error.errors()
    )


async def read_body(request: Request, limit: int, what_to_do: str = "send smaller batches") -> bytes:
    """The whole body, read in chunks and refused with a 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes is over the {limit}-byte limit; {what_to_do}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body is over the {limit}-byte limit; {what_to_do}")
        chunks.append(chunk)
    return b"".join(chunks)


def _outcome_body(outcome: CheckOutcome) -> dict[str, Any]:
    return json_safe(
        {
            "check_id": outcome.check_id,
            **outcome.decision,
            "report": outcome.report_name or None,
            "retraining": outcome.retraining,
        }
    )


@router.post("/events", summary="Store a request-logger CloudEvent (binary or structured mode)")
async def events(request: Request, _: Writer, config: Config, store: Store, metrics: Metrics) -> JSONResponse:
    body = await read_body(request, config.max_event_bytes)
    try:
        event = parse_event(request.headers, body)
    except MalformedEvent as error:
        metrics.malformed_events.labels("unreadable").inc()
        return JSONResponse({"error": str(error)}, status_code=400)
    if config.model_names and event.model_name not in config.model_names:
        metrics.malformed_events.labels("unmonitored_model").inc()
        return JSONResponse(
            {
                "error": f"model {event.model_name!r} is not monitored here (model_names: "
                f"{config.model_names}); send its events to its own monitor or add it to model_names"
            },
            status_code=422,
        )
    try:
        outcome = await run_in_threadpool(store.add_event, event)
    except MalformedEvent as error:  # a shadow event is read whole before it is stored
        metrics.malformed_events.labels("unreadable").inc()
        return JSONResponse({"error": str(error)}, status_code=400)
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
    if event.kind == "shadow":
        return JSONResponse({**answer, "shadow_records": outcome.shadow_added})
    return JSONResponse({**answer, "predictions": outcome.predictions_added})


@router.post("/feedback", summary="True labels for logged predictions: one object, {'items': [...]}, or a list")
async def feedback(
    request: Request,
    credential: Labeller,
    config: Config,
    store: Store,
    checker: Checker,
    metrics: Metrics,
    logged_only: bool = False,
) -> JSONResponse:
    """Labels are kept even before their prediction is logged (the request logger may still be sending it); with
    `logged_only` (what the labelling queue's labels use) a label for no stored prediction is refused instead."""
    body = await read_body(request, config.max_event_bytes)
    try:
        parsed = FEEDBACK_BODY.validate_json(body)
    except ValidationError as error:
        return JSONResponse(
            {"error": f"{problems_of(error)}. Send {{'request_id': ..., 'label': ...}} or a list of them"},
            status_code=422,
        )
    items = parsed.items if isinstance(parsed, FeedbackBatch) else parsed
    items = items if isinstance(items, list) else [items]
    if not items:
        return JSONResponse(
            {"error": "no labels: send at least one {'request_id': ..., 'label': ...}"}, status_code=422
        )
    unknown = await run_in_threadpool(checker.unknown_labels, [(i.request_id, i.index, i.label) for i in items])
    if unknown:
        shown = "; ".join(unknown[:5]) + (f"; and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        return JSONResponse({"error": f"labels must be classes of the model: {shown}"}, status_code=422)
    if logged_only:
        keys = [(item.request_id, item.index) for item in items]
        logged = await run_in_threadpool(store.prediction_versions, keys)
        missing = [
            f"{request_id[:60]!r} text {index}" for request_id, index in keys if (request_id, index) not in logged
        ]
        if missing:
            shown = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
            return JSONResponse(
                {
                    "error": f"no logged prediction for {shown}: label texts the queue served "
                    "(GET /labelling/queue), or send without logged_only to keep labels for predictions still on "
                    "their way"
                },
                status_code=422,
            )
    client = request.client.host if request.client else "unknown"
    labeller = labeller_of(request, credential)
    source = f"{credential}:{labeller}@{client}" if labeller else f"{credential}@{client}"
    stored = [Feedback(item.request_id, item.label, item.index, source) for item in items]
    matched = await run_in_threadpool(store.add_feedback, stored)
    metrics.feedback.inc(len(stored))
    # Feedback for a prediction not logged yet is kept: the request logger may still be sending it.
    return JSONResponse({"stored": len(stored), "matched_predictions": matched})


@router.get("/quality", summary="Live accuracy and per-class F1 over the latest window's feedback, and the estimate")
def quality(config: Config, store: Store, checker: Checker) -> dict[str, Any]:
    latest = store.latest_model_version(None)
    if latest is None:
        return {"model_version": None, **label_quality([], [])}
    window = store.window(*latest, config.window_size)
    model = checker.judged_model(latest[1], len(window))
    estimate = model.estimate(window) if model is not None else None
    return {
        "model_name": latest[0],
        "model_version": latest[1],
        "window": len(window),
        **checker.window_quality(window, model),
        # Without labels, from the calibrated probabilities; null below the window size a check judges.
        "estimated": json_safe(estimate.to_dict()) if estimate is not None else None,
    }


@router.get("/labelling/queue", summary="The unlabelled live texts most worth labelling next, best first")
async def labelling_queue(config: Config, checker: Checker, size: int = 20) -> dict[str, Any]:
    """Ranked by the chance the model is wrong and the distance from its training data, spread so that a batch
    holds no near-duplicates; each item names its request id and index, to label it through POST /feedback."""
    most = config.queue.max_items
    if not 1 <= size <= most:
        raise HTTPException(422, f"size must be 1 to {most} texts (queue.max_items); ask again for the next batch")
    try:
        return await run_in_threadpool(checker.labelling_queue, size)
    except LookupError as error:  # a served version the monitor cannot find the model of
        raise HTTPException(409, f"the queue needs the served model to rank texts: {error}") from None


@router.get("/dashboard", summary="Time series for the dashboard: traffic, class mix, latency and every check")
def dashboard(config: Config, store: Store, hours: float = 24, buckets: int = 48) -> dict[str, Any]:
    """The last `hours` in `buckets` equal buckets: requests, texts, the predicted class mix, p50 and p99
    latency per bucket, and each drift check's scores, thresholds, estimated and live accuracy and groups."""
    longest = config.record_retention_days * 24
    if not 0 < hours <= longest:
        raise HTTPException(422, f"hours must be above 0 and at most {longest:g} (what the store keeps)")
    if not 1 <= buckets <= MAX_DASHBOARD_BUCKETS:
        raise HTTPException(422, f"buckets must be 1 to {MAX_DASHBOARD_BUCKETS}")
    until = datetime.now(UTC)
    return dashboard_series(store, until - timedelta(hours=hours), until, buckets)


@router.get("/shadow", summary="The shadowed challenger against the champion on the same live texts")
def shadow(config: Config, store: Store, challenger_version: str = "", window: int = 0) -> dict[str, Any]:
    """Agreement, per-class disagreement, latency of each and, with feedback, accuracy of each, over the latest
    `window` shadowed texts (default `window_size`) of `challenger_version` (default: the latest shadowed)."""
    if window < 0:
        raise HTTPException(422, "window must be a positive number of texts (0 = the monitor's window_size)")
    frame = store.shadow_window(window or config.window_size, challenger_version)
    return compare_shadow(frame)


@router.post("/checks", summary="Run a drift check now (what the schedule and the CronJob do)")
async def run_check(_: Writer, checks: Checks) -> JSONResponse:
    """One check at a time: a request while one runs gets 202 and that check's ticket at once."""
    ticket, outcome = checks.request()
    if outcome is None:
        return JSONResponse({"status": "running", **ticket.as_json()}, status_code=202)
    return JSONResponse({**_outcome_body(await outcome), "ticket": ticket.number})


@router.get("/checks", summary="The latest drift checks and their decisions")
def list_checks(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    return [
        {
            **record.summary(),
            # Checks stored before scores were made JSON-safe may hold NaN.
            "scores": json_safe(record.result.get("scores", {})),
            "window": json_safe(record.result.get("window")),
            "estimate": json_safe(record.result.get("estimate")),
        }
        for record in store.checks(min(max(limit, 1), 1000))
    ]


@router.get("/reports", summary="Saved reports (HTML and JSON) by name")
def list_reports(checker: Checker) -> list[dict[str, str]]:
    return [
        {"name": name, "html": f"/reports/{name}.html", "json": f"/reports/{name}.json"}
        for name in checker.reports.names(CHECK_REPORT_PREFIX)
    ]


@router.get("/reports/{filename}", summary="One saved report, as HTML or JSON")
def report(filename: str, checker: Checker) -> FileResponse:
    return _file(checker.reports_dir, filename, {".html", ".json"})


@router.get("/retraining", summary="Retraining runs started, one per drift episode, with the gate's decision")
def retraining(store: Store, checker: Checker) -> list[dict[str, Any]]:
    """Each run as the store records it, plus (once its pipeline has got that far) its MLflow run id and the
    promotion gate's and the deploy step's tags; `outcome_error` says why they are missing when MLflow is away."""
    checker.refresh_runs()
    runs = store.retraining_runs()
    try:
        outcomes = gate_outcomes(checker.tracking_uri, [run["episode_key"] for run in runs])
    except Exception as error:  # the registry being away must not hide the runs themselves
        log.warning("retraining outcomes unavailable: %s", error)
        return [{**run, "outcome_error": f"MLflow at {checker.tracking_uri} did not answer: {error}"} for run in runs]
    return [{**run, **outcomes.get(run["episode_key"], {})} for run in runs]


@router.get("/retraining/{episode}/{filename}", summary="A retraining run's data files, for its pipeline steps")
def retraining_file(episode: str, filename: str, checker: Checker) -> FileResponse:
    if not SAFE_NAME.match(episode):
        raise HTTPException(404, f"no retraining episode {episode!r}")
    return _file(checker.workdir / "retraining" / episode, filename, {".csv"})


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(metrics: Metrics) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/health", summary="Ready when the store answers")
def health(store: Store) -> dict[str, str]:
    store.ping()
    return {"status": "ok"}


@router.get("/livez", summary="Alive when the process answers (the store may be away)")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


def _file(directory: Path, filename: str, suffixes: set[str]) -> FileResponse:
    path = directory / filename
    if not SAFE_NAME.match(filename) or path.suffix not in suffixes or not path.is_file():
        raise HTTPException(404, f"no file {filename!r} here; list them first")
    return FileResponse(path)
