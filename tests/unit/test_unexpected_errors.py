"""An error no handler takes gives a 500 and at most one traceback a minute (issue 33: each 500 wrote two
tracebacks, the app's and uvicorn's after Starlette raised it again, with no limit). The monitor's real app under a
real uvicorn server, its store made to fail; and the predictor's stack of handlers (KServe's generic handler for
`Exception` with textclf's middleware) on a route that fails."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from kserve.errors import generic_exception_handler

from tests.support.events import binary_cloud_event, v2_exchange
from tests.support.servers import uvicorn_in_thread
from textclf.config import MonitorConfig
from textclf.monitoring.server import build_app
from textclf.serving.unexpected_errors import UnexpectedErrors

pytestmark = pytest.mark.unit

REQUESTS = 5


class Recording(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def log_records() -> Iterator[list[logging.LogRecord]]:
    """Every record any logger writes (uvicorn's among them)."""
    handler = Recording()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def tracebacks(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [record for record in records if record.exc_info]


def test_a_failing_store_gives_500s_and_one_traceback(tmp_path: Path, log_records: list) -> None:
    app = build_app(MonitorConfig(workdir=str(tmp_path)))

    def fails(*_: object, **__: object) -> None:
        raise RuntimeError("the disk caught fire")

    app.state.store.add_event = fails
    request, _ = v2_exchange(["a text"], ["positive"])
    headers, body = binary_cloud_event("r1", "request", request)
    with uvicorn_in_thread(app) as url, httpx.Client(base_url=url) as client:
        answers = [client.post("/events", content=body, headers=headers) for _ in range(REQUESTS)]
        assert client.get("/health").status_code == 200
    assert [answer.status_code for answer in answers] == [500] * REQUESTS
    assert answers[0].json() == {"error": "RuntimeError: the disk caught fire (details in the monitor's log)"}
    [logged] = tracebacks(log_records)
    assert logged.exc_info[1].args == ("the disk caught fire",)
    assert "POST /events" in logged.getMessage()


def test_the_predictors_handlers_log_an_unexpected_error_once(log_records: list) -> None:
    app = FastAPI()
    app.add_exception_handler(Exception, generic_exception_handler)  # as KServe's RESTServer does

    @app.get("/fails")
    async def fails() -> None:
        raise ValueError("an error nobody expected")

    app.add_middleware(UnexpectedErrors, service="predictor", log_seconds=3600)
    with uvicorn_in_thread(app) as url, httpx.Client(base_url=url) as client:
        answers = [client.get("/fails") for _ in range(REQUESTS)]
    assert [answer.status_code for answer in answers] == [500] * REQUESTS
    assert "details in the predictor's log" in answers[0].json()["error"]
    assert len(tracebacks(log_records)) == 1


def test_the_next_line_after_the_interval_counts_the_errors_not_logged() -> None:
    errors = UnexpectedErrors(app=None, service="test", log_seconds=3600)  # type: ignore[arg-type]
    handler = Recording()
    logger = logging.getLogger("textclf.serving.unexpected_errors")
    logger.addHandler(handler)
    try:
        for _ in range(5):  # the first is logged, the next four only counted
            errors._log({"method": "GET", "path": "/x"}, RuntimeError("again"))
        errors._log_lines.seconds = 0  # the interval has passed
        errors._log({"method": "GET", "path": "/x"}, RuntimeError("again"))
    finally:
        logger.removeHandler(handler)
    records = handler.records[1:]
    assert "(5 unexpected errors since the last such line)" in records[0].getMessage()


def test_a_throttled_log_lets_one_line_through_per_interval_with_the_counts_since() -> None:
    from textclf.runtime.logs import ThrottledLog

    now = [0.0]
    throttled = ThrottledLog(60, clock=lambda: now[0])
    assert throttled.due("refused") == {"refused": 1}
    assert throttled.due("refused") is None and throttled.due("buffer_full") is None
    now[0] = 59.9
    assert throttled.due("refused") is None
    now[0] = 60.0
    assert throttled.due("refused") == {"refused": 3, "buffer_full": 1}
