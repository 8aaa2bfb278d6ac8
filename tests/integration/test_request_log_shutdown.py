"""A graceful stop loses no request-log event (issue 33: SIGTERM dropped 91 of 200 predictions' events silently).

The real `textclf serve` logs to a sink that takes a while per event, so events are still buffered when SIGTERM
(what a rolling update sends) arrives: all of them reach the sink before the process exits. With the sink away, what
the flush could not send goes to the spool directory, and the next start sends it."""

from __future__ import annotations

import signal
import time
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from tests.support.events import recording_sink
from tests.support.servers import RunningServer, textclf_server
from textclf.runtime.local_processes import free_port

pytestmark = pytest.mark.integration

PREDICTIONS = 200
SECONDS_PER_EVENT = 0.01
"""The sink's time per event: 400 events take 4 s or more to deliver, longer than 200 predictions take to answer."""
EXIT_WITHIN_SECONDS = 60
"""KServe's wait for requests in flight (none here) and the 10 s flush, with room for a slow machine."""


def slow_sink(port: int = 0) -> AbstractContextManager[tuple[str, list[tuple[str, str]]]]:
    return recording_sink(seconds_per_event=SECONDS_PER_EVENT, port=port)


def predict(server: RunningServer, count: int, prefix: str) -> set[str]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for index in range(count):
            answer = client.post(
                "/predict", json={"text": f"text {index}"}, headers={"x-request-id": f"{prefix}-{index}"}
            )
            assert answer.status_code == 200, answer.text
    return {f"{prefix}-{index}" for index in range(count)}


def terminate(server: RunningServer) -> float:
    """SIGTERM, as a rolling update sends; seconds until the process exited."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=EXIT_WITHIN_SECONDS)
    return time.monotonic() - started


def test_sigterm_flushes_every_buffered_event(tmp_path: Path, step_inputs: dict) -> None:
    with slow_sink() as (url, received):
        with textclf_server(tmp_path, "--model", str(step_inputs["model"]), "--backend", "onnx",
                            "--request-logger-url", url) as server:  # fmt: skip
            ids = predict(server, PREDICTIONS, "flushed")
            assert len(set(received)) < 2 * PREDICTIONS, "the sink took every event before the stop: nothing was tested"
            seconds = terminate(server)
        assert {event_id for event_id, _ in received} >= ids
        assert len({pair for pair in received if pair[0] in ids}) == 2 * PREDICTIONS
    assert seconds < EXIT_WITHIN_SECONDS


def test_what_the_flush_cannot_send_is_spooled_and_sent_at_the_next_start(tmp_path: Path, step_inputs: dict) -> None:
    port = free_port()  # nothing listens there until the second start
    spool = tmp_path / "spool"
    options = ("--model", str(step_inputs["model"]), "--backend", "onnx", "--request-logger-url",
               f"http://127.0.0.1:{port}/events", "--set", "request_logger_flush_seconds=1",
               "--set", f"request_logger_spool_dir={spool}")  # fmt: skip
    with textclf_server(tmp_path, *options) as server:
        ids = predict(server, 20, "spooled")
        terminate(server)
        assert "spooled to" in server.log()
    assert len(b"".join(path.read_bytes() for path in spool.glob("*.jsonl")).splitlines()) == 40
    with slow_sink(port) as (_, received), textclf_server(tmp_path, *options):
        deadline = time.monotonic() + 30
        while len(set(received)) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {event_id for event_id, _ in received} == ids and len(set(received)) == 40
    assert not list(spool.glob("*.jsonl"))
