"""The request logger against a real HTTP sink that answers 5xx for one event, 4xx for another and 202 for the
rest: the event the sink cannot take goes behind the others and is given up after MAX_ATTEMPTS answers (a dead
letter), the refused one is dropped at once, every other event arrives, and the log says so once."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry

from textclf.serving.request_logger import MAX_ATTEMPTS, LoggedEvent, RequestLogger

pytestmark = pytest.mark.integration

POISON, REFUSED = "poison", "refused"
GOOD = [f"good-{i}" for i in range(6)]


@pytest.fixture
def sink() -> Iterator[tuple[str, list[str]]]:
    """A sink that answers 500 for POISON, 422 for REFUSED and 202 for any other ce-id; yields its URL and the
    ids of every event it received, in order."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            event_id = self.headers["ce-id"]
            received.append(event_id)
            status = {POISON: 500, REFUSED: 422}.get(event_id, 202)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/events", received
    finally:
        server.shutdown()
        server.server_close()


def event(event_id: str) -> LoggedEvent:
    return LoggedEvent("org.kubeflow.serving.inference.request", event_id, b"{}", "application/json", "v2_infer", "1")


def test_one_event_the_sink_cannot_take_never_holds_back_the_others(
    sink: tuple[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    url, received = sink
    registry = CollectorRegistry()
    logger = RequestLogger(url, "textclf", registry=registry)

    async def deliver() -> float:
        for event_id in (POISON, REFUSED, *GOOD):
            logger.log(event(event_id))
        started = time.monotonic()
        while logger.pending and time.monotonic() - started < 120:
            await asyncio.sleep(0.05)
        logger._worker.cancel()
        return time.monotonic() - started

    with caplog.at_level(logging.WARNING, logger="textclf.serving.request_logger"):
        seconds = asyncio.run(deliver())
    assert logger.pending == 0, f"still pending after {seconds:.0f} s"
    assert [event_id for event_id in received if event_id.startswith("good")] == GOOD
    assert received.count(POISON) == MAX_ATTEMPTS and received.count(REFUSED) == 1
    # The good events did not wait for the poison's retries: all arrived before its second try.
    assert received.index(GOOD[-1]) < [i for i, e in enumerate(received) if e == POISON][1]

    def dropped(reason: str) -> float | None:
        return registry.get_sample_value("textclf_request_log_dropped_total", {"reason": reason})

    assert dropped("dead_letter") == 1 and dropped("refused") == 1
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "request log events dropped (1 refused)" in warnings[0], warnings
