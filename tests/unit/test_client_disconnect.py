"""A client that leaves before its answer (issue 33: three 64-text requests whose clients had gone were still
computed, and logged as 200 predictions): the middleware cancels the request's handling, records 499, and sends
no request-log events. The batcher's side (a cancelled request gives no more texts) is in test_batching.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from textclf.serving.middleware import CLIENT_CLOSED_REQUEST, serving_middleware
from textclf.serving.prometheus import ServingMetrics
from textclf.serving.request_logger import RequestLogger

pytestmark = pytest.mark.unit


class RecordingLogger:
    log_exchange = RequestLogger.log_exchange

    def __init__(self) -> None:
        self.events: list = []

    def log(self, event: object) -> None:
        self.events.append(event)


def run(leaves_after: float | None) -> tuple[dict, list, list[str]]:
    """One v1 request through the middleware to an app that takes 0.5 s; the client leaves after `leaves_after`
    seconds (None: it stays). Returns what the client was sent, the logged events and what the app did."""
    app_did: list[str] = []

    async def app(scope: dict, receive, send) -> None:
        app_did.append("started")
        try:
            await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            app_did.append("cancelled")
            raise
        app_did.append("answered")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"predictions": []}'})

    async def scenario() -> tuple[list, list]:
        sent: list[dict] = []
        body_read = False

        async def receive() -> dict:
            nonlocal body_read
            if not body_read:
                body_read = True
                return {"type": "http.request", "body": b'{"instances": ["a text"]}', "more_body": False}
            if leaves_after is None:
                await asyncio.Event().wait()
            await asyncio.sleep(leaves_after)
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        routed_by = FastAPI()
        routed_by.post("/v1/models/{model_name}:predict")(lambda model_name: None)
        request_logger = RecordingLogger()
        metrics = ServingMetrics.create(CollectorRegistry())
        middleware = serving_middleware(
            app,
            routed_by,
            SimpleNamespace(name="textclf", version="1"),
            metrics,
            4096,
            False,
            request_logger,
        )
        scope = {"type": "http", "method": "POST", "path": "/v1/models/textclf:predict", "headers": [],
                 "client": ("127.0.0.1", 1)}  # fmt: skip
        await middleware(scope, receive, send)
        codes = metrics.requests.collect()[0].samples
        return sent, request_logger.events, [s.labels["code"] for s in codes if s.name.endswith("_total")]

    sent, events, codes = asyncio.run(scenario())
    return {"sent": sent, "codes": codes}, events, app_did


def test_a_client_that_leaves_stops_its_request_and_no_prediction_is_logged() -> None:
    outcome, events, app_did = run(leaves_after=0.05)
    assert app_did == ["started", "cancelled"]
    assert outcome["sent"] == [] and events == []
    assert outcome["codes"] == [str(CLIENT_CLOSED_REQUEST)]


def test_a_client_that_stays_gets_its_answer_and_it_is_logged() -> None:
    outcome, events, app_did = run(leaves_after=None)
    assert app_did == ["started", "answered"]
    assert outcome["sent"][0]["status"] == 200 and len(events) == 2
    assert outcome["codes"] == ["200"]
