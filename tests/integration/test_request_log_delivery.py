"""The request logger against a real HTTP sink that answers 5xx for one event, 4xx for another and 202 for the
rest: the event the sink cannot take goes behind the others and is given up after MAX_ATTEMPTS answers (a dead
letter), the refused one is dropped at once, every other event arrives, and the log says so once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from tests.support.events import recording_sink
from textclf.runtime.local_processes import free_port
from textclf.serving.request_logger import MAX_ATTEMPTS, LoggedEvent, RequestLogger

pytestmark = pytest.mark.integration

POISON, REFUSED = "poison", "refused"
GOOD = [f"good-{i}" for i in range(6)]


@pytest.fixture
def sink() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A sink that answers 500 for POISON, 422 for REFUSED and 202 for any other ce-id."""
    with recording_sink(lambda event_id: {POISON: 500, REFUSED: 422}.get(event_id, 202)) as running:
        yield running


def event(event_id: str) -> LoggedEvent:
    return LoggedEvent("org.kubeflow.serving.inference.request", event_id, b"{}", "application/json", "v2_infer", "1")


def test_one_event_the_sink_cannot_take_never_holds_back_the_others(
    sink: tuple[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    url, pairs = sink
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
    received = [event_id for event_id, _ in pairs]
    assert [event_id for event_id in received if event_id.startswith("good")] == GOOD
    assert received.count(POISON) == MAX_ATTEMPTS and received.count(REFUSED) == 1
    # The good events did not wait for the poison's retries: all arrived before its second try.
    assert received.index(GOOD[-1]) < [i for i, e in enumerate(received) if e == POISON][1]

    def dropped(reason: str) -> float | None:
        return registry.get_sample_value("textclf_request_log_dropped_total", {"reason": reason})

    assert dropped("dead_letter") == 1 and dropped("refused") == 1
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "request log events dropped (1 refused)" in warnings[0], warnings


def test_events_left_at_a_stop_without_a_spool_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    logger = RequestLogger(f"http://127.0.0.1:{free_port()}/events", "textclf", registry=registry, flush_seconds=0.3)

    async def stop_with_the_sink_away() -> None:
        for index in range(3):
            logger.log(event(f"lost-{index}"))
        await logger.close()
        logger.log(event("after-the-stop"))  # gRPC may still answer while HTTP has stopped

    with caplog.at_level(logging.WARNING, logger="textclf.serving.request_logger"):
        asyncio.run(stop_with_the_sink_away())
    assert registry.get_sample_value("textclf_request_log_dropped_total", {"reason": "shutdown"}) == 4
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("3 events" in warning and "lost" in warning for warning in warnings), warnings


def test_a_spool_that_cannot_be_read_does_not_stop_the_start(tmp_path) -> None:
    (tmp_path / "events-1-1.jsonl").mkdir()  # not a file: reading it fails
    (tmp_path / "events-2-1.jsonl").write_bytes(event("spooled").spooled() + b"not a spooled event\n")
    logger = RequestLogger(
        f"http://127.0.0.1:{free_port()}/events", "textclf", registry=CollectorRegistry(), spool_dir=str(tmp_path)
    )

    async def start() -> int:
        logger.start()
        pending = logger.pending
        logger._worker.cancel()
        return pending

    assert asyncio.run(start()) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["events-1-1.jsonl"]
