"""The server's request logger and the monitor as real processes with tokens set: unauthenticated writes are
refused, authenticated ones accepted, and every prediction made while the monitor was down arrives exactly once
after it comes back (the logger retries; the monitor stores each event id once)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support.events import binary_cloud_event, v2_exchange
from tests.support.servers import free_port, start_monitor, textclf_server
from textclf.monitor.store import MonitorStore
from textclf.monitor.tables import feedback_table, predictions_table
from textclf.runtime.local_processes import stop_process

pytestmark = pytest.mark.integration

WRITE_TOKEN = "monitor-write-token"
FEEDBACK_TOKEN = "labelling-tool-token"
PREDICTIONS = 90


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def metric(client: httpx.Client, url: str, line_start: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in client.get(f"{url}/metrics").text.splitlines()
        if line.startswith(line_start)
    )


def wait_for(condition, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_writes_need_their_token_and_labels_record_where_they_came_from(tmp_path: Path) -> None:
    options = (
        "--check-interval",
        "0",
        "--set",
        f"write_token={WRITE_TOKEN}",
        "--set",
        f"feedback_token={FEEDBACK_TOKEN}",
    )
    monitor = start_monitor(tmp_path, free_port(), *options)
    try:
        with httpx.Client(base_url=monitor.url, timeout=30) as client:
            request, _ = v2_exchange(["a text"], ["positive"])
            headers, body = binary_cloud_event("auth-1", "request", request)
            assert client.post("/events", headers=headers, content=body).status_code == 401
            refused = client.post("/events", headers={**headers, **bearer("wrong")}, content=body)
            assert refused.status_code == 401 and "write_token" in refused.json()["error"]
            assert (
                client.post("/events", headers={**headers, **bearer(FEEDBACK_TOKEN)}, content=body).status_code == 401
            )
            assert client.post("/events", headers={**headers, **bearer(WRITE_TOKEN)}, content=body).status_code == 200
            # Basic authentication with the token as password: what KServe's agent sends for a logger URL
            # with user information.
            basic = httpx.BasicAuth("textclf", WRITE_TOKEN)
            _, response = v2_exchange(["a text"], ["positive"])
            headers, body = binary_cloud_event("auth-1", "response", response)
            assert client.post("/events", headers=headers, content=body, auth=basic).status_code == 200

            label = {"request_id": "auth-1", "label": "negative"}
            assert client.post("/feedback", json=label).status_code == 401
            assert client.post("/feedback", json=label, headers=bearer(FEEDBACK_TOKEN)).status_code == 200
            assert client.post("/checks").status_code == 401
            assert client.post("/checks", headers=bearer(FEEDBACK_TOKEN)).status_code == 401
            assert client.post("/checks", headers=bearer(WRITE_TOKEN)).status_code == 200
            assert client.get("/health").status_code == 200 and client.get("/checks").status_code == 200

            other_model = {**dict(binary_cloud_event("auth-2", "request", request)[0]), **bearer(WRITE_TOKEN)}
            other_model["ce-inferenceservicename"] = "someone-elses-model"
            unmonitored = client.post("/events", headers=other_model, content=body)
            assert unmonitored.status_code == 422 and "model_names" in unmonitored.json()["error"]
            long_id = {**other_model, "ce-inferenceservicename": "textclf", "ce-id": "x" * 201}
            assert client.post("/events", headers=long_id, content=body).status_code == 400
    finally:
        stop_process(monitor.process)
    with MonitorStore(f"sqlite:///{tmp_path / 'monitor.db'}").engine.connect() as connection:
        (row,) = connection.execute(feedback_table.select()).all()
    assert row.source.startswith("feedback-token@127.0.0.1")


def test_every_prediction_made_while_the_monitor_was_down_arrives_exactly_once(
    tmp_path: Path, step_inputs: dict
) -> None:
    port = free_port()
    monitor_options = ("--check-interval", "0", "--set", f"write_token={WRITE_TOKEN}")
    monitor = start_monitor(tmp_path, port, *monitor_options)
    sent: list[str] = []
    with (
        textclf_server(
            tmp_path,
            "--model",
            str(step_inputs["model"]),
            "--request-logger-url",
            f"{monitor.url}/events",
            env={"TEXTCLF_SERVE_REQUEST_LOGGER_TOKEN": WRITE_TOKEN, "TEXTCLF_SERVE_ACCESS_LOG": "false"},
        ) as server,
        httpx.Client(timeout=30) as client,
    ):

        def predict(count: int) -> None:
            for _ in range(count):
                request_id = f"stream-{len(sent)}"
                answer = client.post(f"{server.url}/predict", json={"text": f"text {len(sent)}"},
                                     headers={"x-request-id": request_id})  # fmt: skip
                assert answer.status_code == 200
                sent.append(request_id)

        predict(PREDICTIONS // 3)
        monitor.process.send_signal(signal.SIGTERM)
        monitor.process.wait(timeout=60)
        predict(PREDICTIONS // 3)  # the monitor is down: these wait in the logger's buffer
        assert metric(client, server.url, "textclf_request_log_retries_total") > 0
        monitor = start_monitor(tmp_path, port, *monitor_options)
        predict(PREDICTIONS - len(sent))
        store = MonitorStore(f"sqlite:///{tmp_path / 'monitor.db'}")
        assert wait_for(lambda: store.count(predictions_table) >= PREDICTIONS), store.count(predictions_table)
        assert metric(client, server.url, "textclf_request_log_dropped_total") == 0
    stop_process(monitor.process)
    window = store.window("textclf", store.latest_model_version("textclf")[1], 10 * PREDICTIONS)
    assert sorted(window["request_id"]) == sorted(sent), "every prediction exactly once"


def test_the_events_port_takes_events_without_a_token_and_nothing_else(tmp_path: Path) -> None:
    """What KServe's agent posts to (it cannot send a token; the NetworkPolicy admits only predictor pods)."""
    events_port = free_port()
    options = ("--check-interval", "0", "--set", f"write_token={WRITE_TOKEN}", "--set", f"events_port={events_port}")
    monitor = start_monitor(tmp_path, free_port(), *options)
    events_url = f"http://127.0.0.1:{events_port}"
    try:
        with httpx.Client(timeout=30) as client:
            request, _ = v2_exchange(["a text"], ["positive"])
            headers, body = binary_cloud_event("port-1", "request", request)
            assert client.post(f"{monitor.url}/events", headers=headers, content=body).status_code == 401
            assert client.post(f"{events_url}/events", headers=headers, content=body).status_code == 200
            for method, path in (("GET", "/health"), ("POST", "/feedback"), ("POST", "/checks"), ("GET", "/events")):
                refused = client.request(method, f"{events_url}{path}", json={"request_id": "port-1", "label": "x"})
                assert refused.status_code == 404, path
                assert "only POST /events" in refused.json()["error"]
            assert client.get(f"{monitor.url}/health").status_code == 200
    finally:
        stop_process(monitor.process)
    assert MonitorStore(f"sqlite:///{tmp_path / 'monitor.db'}").event_ids() == {("port-1", "request")}
