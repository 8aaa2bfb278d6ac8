"""The monitoring service as its own process on 127.0.0.1: real CloudEvents over HTTP in both content modes,
duplicates, malformed events, a kill in the middle of a stream, feedback and quality, checks and reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.events import binary_cloud_event, structured_cloud_event, v2_exchange
from tests.support.servers import free_port, monitor_server, start_monitor
from textclf.monitor.store import MonitorStore
from textclf.monitor.tables import events_table, feedback_table, predictions_table
from textclf.runtime.local_processes import stop_process
from textclf.runtime.wire import MAX_REQUEST_HEAD_BYTES

pytestmark = pytest.mark.integration


def post_exchange(
    client: httpx.Client,
    url: str,
    event_id: str,
    texts: list[str],
    labels: list[str],
    mode=binary_cloud_event,
    version: str = "1",
) -> list[httpx.Response]:
    request, response = v2_exchange(texts, labels, version)
    answers = []
    for kind, payload in (("request", request), ("response", response)):
        headers, body = mode(event_id, kind, payload, version)
        answers.append(client.post(f"{url}/events", headers=headers, content=body))
    return answers


def metric(client: httpx.Client, url: str, line_start: str) -> float:
    for line in client.get(f"{url}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_events_in_both_modes_are_stored_once_and_bad_ones_get_4xx(tmp_path: Path) -> None:
    with (
        monitor_server(tmp_path, "--check-interval", "0", "--set", "max_event_bytes=4096") as monitor,
        httpx.Client(timeout=30) as client,
    ):
        url = monitor.url
        binary = post_exchange(client, url, "b-1", ["good film", "bad film"], ["positive", "negative"])
        assert [r.status_code for r in binary] == [200, 200]
        assert binary[1].json() == {"id": "b-1", "kind": "response", "duplicate": False, "predictions": 2}
        structured = post_exchange(client, url, "s-1", ["fine"], ["positive"], mode=structured_cloud_event)
        assert structured[1].json()["predictions"] == 1
        again = post_exchange(client, url, "b-1", ["good film", "bad film"], ["positive", "negative"])
        assert [r.json()["duplicate"] for r in again] == [True, True]

        bad = {
            "not json": ({"ce-specversion": "1.0", "ce-id": "x", "ce-type": "t", "ce-source": "s"}, b"{oops"),
            "no id": (
                {"ce-specversion": "1.0", "ce-type": "org.kubeflow.serving.inference.request", "ce-source": "s"},
                b"{}",
            ),
            "wrong type": (
                {"ce-specversion": "1.0", "ce-id": "x", "ce-type": "com.example.other", "ce-source": "s"},
                b"{}",
            ),
            "structured not an object": ({"content-type": "application/cloudevents+json"}, b"[1, 2]"),
        }
        for case, (headers, body) in bad.items():
            answer = client.post(f"{url}/events", headers=headers, content=body)
            assert answer.status_code == 400, case
            assert answer.json()["error"], case
        too_big = client.post(f"{url}/events", headers=bad["not json"][0], content=b"x" * 5000)
        assert too_big.status_code == 413 and "4096-byte limit" in too_big.json()["error"]
        request, _ = v2_exchange(["one", "two"], ["positive", "negative"])
        _, response = v2_exchange(["one"], ["positive"])
        client.post(
            f"{url}/events", headers=binary_cloud_event("mismatch", "request", request)[0], content=json.dumps(request)
        )
        disagreeing = client.post(
            f"{url}/events",
            headers=binary_cloud_event("mismatch", "response", response)[0],
            content=json.dumps(response),
        )
        assert disagreeing.status_code == 422 and "2 texts but the response 1" in disagreeing.json()["error"]

        assert metric(client, url, 'textclf_monitor_malformed_events_total{reason="unreadable"}') == 4
        assert (
            metric(client, url, 'textclf_monitor_malformed_events_total{reason="request_and_response_disagree"}') == 1
        )
        assert metric(client, url, "textclf_monitor_duplicate_events_total") == 2
        assert metric(client, url, "textclf_monitor_predictions_total") == 3
        assert client.get(f"{url}/health").status_code == 200
    store = MonitorStore(f"sqlite:///{tmp_path / 'monitor.db'}")
    assert store.count(predictions_table) == 3
    assert store.count(events_table) == 6


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_acknowledged_event_survives_a_kill_in_the_middle_of_a_stream(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        database = f"sqlite:///{tmp_path / 'monitor.db'}"
    else:
        database = request.getfixturevalue("postgres_url")
        MonitorStore(database).create()
        with MonitorStore(database).engine.begin() as connection:
            for table in (events_table, predictions_table):
                connection.execute(table.delete())
    port = free_port()
    monitor = start_monitor(tmp_path, port, "--check-interval", "0", "--database-url", database)
    acknowledged: list[tuple[str, str]] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(timeout=5) as client:
            for i in range(100_000):
                if stop.is_set():
                    return
                request_payload, response_payload = v2_exchange([f"text {i}"], ["positive"])
                for kind, payload in (("request", request_payload), ("response", response_payload)):
                    headers, body = binary_cloud_event(f"stream-{i}", kind, payload)
                    try:
                        answer = client.post(f"{monitor.url}/events", headers=headers, content=body)
                    except httpx.HTTPError:
                        return
                    if answer.status_code == 200:
                        acknowledged.append((f"stream-{i}", kind))

    sender = threading.Thread(target=stream)
    sender.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < 150:
        assert time.monotonic() < deadline and sender.is_alive(), f"only {len(acknowledged)} events acknowledged"
        threading.Event().wait(0.05)
    os.kill(monitor.process.pid, signal.SIGKILL)
    monitor.process.wait()
    sender.join(timeout=30)
    stop.set()

    store = MonitorStore(database)
    stored = store.event_ids()
    assert set(acknowledged) <= stored
    restarted = start_monitor(tmp_path, port, "--check-interval", "0", "--database-url", database)
    try:
        with httpx.Client(timeout=30) as client:
            # The sender resends what it never saw acknowledged; each exchange is then stored exactly once.
            last = max(int(event_id.split("-")[1]) for event_id, _ in acknowledged)
            for i in range(last + 2):
                post_exchange(client, restarted.url, f"stream-{i}", [f"text {i}"], ["positive"])
    finally:
        stop_process(restarted.process)
    assert store.count(predictions_table) == last + 2
    assert store.count(events_table) == 2 * (last + 2)


def test_feedback_single_and_batch_gives_live_quality(tmp_path: Path) -> None:
    with monitor_server(tmp_path, "--check-interval", "0") as monitor, httpx.Client(timeout=30) as client:
        url = monitor.url
        post_exchange(client, url, "r1", ["great", "awful", "meh"], ["positive", "negative", "positive"])
        single = client.post(f"{url}/feedback", json={"request_id": "r1", "label": "positive"})
        assert single.json() == {"stored": 1, "matched_predictions": 1}
        batch = client.post(
            f"{url}/feedback",
            json={
                "items": [
                    {"request_id": "r1", "index": 1, "label": "negative"},
                    {"request_id": "r1", "index": 2, "label": "negative"},
                ]
            },
        )
        assert batch.json() == {"stored": 2, "matched_predictions": 2}
        early = client.post(f"{url}/feedback", json=[{"request_id": "not-yet-logged", "label": "positive"}])
        assert early.json() == {"stored": 1, "matched_predictions": 0}
        quality = client.get(f"{url}/quality").json()
        assert quality["labelled"] == 3 and quality["accuracy"] == pytest.approx(2 / 3)
        assert quality["per_class_f1"] == {"negative": pytest.approx(2 / 3), "positive": pytest.approx(2 / 3)}
        huge_index = {"request_id": "r1", "index": 2**63, "label": "positive"}  # issue 33: a 500
        for body in ({"label": "positive"}, {"request_id": "r1", "label": ""}, {"items": []}, "nonsense", huge_index):
            refused = client.post(f"{url}/feedback", json=body)
            assert refused.status_code == 422 and refused.json()["error"], body
        assert client.post(f"{url}/feedback", content=b"\xff\xfe").status_code == 422
        # One cap for every shape (issue 33: a bare list of 20,000 was stored while {"items": ...} refused 10,001).
        too_many = [{"request_id": f"r{i}", "label": "positive"} for i in range(10_001)]
        assert client.post(f"{url}/feedback", json=too_many).status_code == 422
        # X-Forwarded-For is a proxy's word, and no proxy is configured: the connection's address is recorded.
        forged = client.post(
            f"{url}/feedback",
            json={"request_id": "r1", "label": "positive"},
            headers={"x-forwarded-for": "203.0.113.9"},
        )
        assert forged.status_code == 200
        with MonitorStore(f"sqlite:///{tmp_path / 'monitor.db'}").engine.connect() as connection:
            sources = {row.source for row in connection.execute(feedback_table.select())}
        assert sources == {"unauthenticated@127.0.0.1"}
        # A request head far over the limit is refused before it is read whole, and the monitor goes on (issue 33:
        # a 64 MB header was read, stalling the event loop for 4.6 s).
        huge = client.get(f"{url}/health", headers={"x-padding": "a" * (16 * MAX_REQUEST_HEAD_BYTES)})
        assert huge.status_code == 431
        assert client.get(f"{url}/health").status_code == 200


def test_a_check_on_demand_saves_and_serves_its_report(tmp_path: Path, step_inputs: dict) -> None:
    options = (
        "--check-interval",
        "0",
        "--set",
        f"reference_model={step_inputs['model']}",
        "--set",
        "policy.min_window_size=40",
        "--set",
        "retrain=false",
        "--set",
        "report.embedding_sample=40",
    )
    with monitor_server(tmp_path, *options) as monitor, httpx.Client(timeout=300) as client:
        url = monitor.url
        first = client.post(f"{url}/checks").json()
        assert first["decision"] == "insufficient_data" and first["report"] is None
        for i in range(45):
            post_exchange(client, url, f"t{i}", [f"lol gr8 #{i} @you 😂 http://t.co/{i}"], ["positive"], version="tiny")
        checked = client.post(f"{url}/checks").json()
        assert checked["window"]["size"] == 45 and checked["window"]["model_version"] == "tiny"
        # Drift, but no feedback yet: a retraining run would have nothing new to learn from.
        assert checked["decision"] == "drift" and "waiting for feedback" in checked["reason"]
        assert {"length_chars", "oov_share", "non_letter_share", "embedding", "predicted_label", "score"} <= set(
            checked["scores"]
        )
        assert checked["scores"]["non_letter_share"]["drifted"]
        # Without a single label: the estimate from the window's calibrated probabilities, and the drift explained.
        estimate = checked["estimate"]
        assert estimate["texts"] == 45 and checked["window"]["estimated_accuracy"] == estimate["accuracy"]
        assert 0 <= estimate["accuracy_interval"][0] <= estimate["accuracy"] <= estimate["accuracy_interval"][1] <= 1
        assert checked["groups"] and sum(group["window_share"] for group in checked["groups"]) == pytest.approx(1)
        assert all(group["examples"] and group["estimated_accuracy"] is not None for group in checked["groups"])
        assert client.get(f"{url}/quality").json()["estimated"]["accuracy"] == pytest.approx(estimate["accuracy"])
        assert metric(client, url, "textclf_monitor_estimated_accuracy") == pytest.approx(estimate["accuracy"])
        assert metric(client, url, 'textclf_monitor_estimated_accuracy_bound{bound="lower"}') == pytest.approx(
            estimate["accuracy_interval"][0]
        )
        reports = client.get(f"{url}/reports").json()
        assert reports[0]["name"] == checked["report"]
        page = client.get(f"{url}{reports[0]['html']}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "non_letter_share" in page.text
        assert "Estimated without labels" in page.text and "What drifted" in page.text
        document = client.get(f"{url}{reports[0]['json']}").json()
        assert document["decision"] == checked["decision"] and "evidently" in document
        assert client.get(f"{url}/reports/..%2Fmonitor.db").status_code == 404
        listed = client.get(f"{url}/checks").json()
        assert [c["decision"] for c in listed][:2] == [checked["decision"], "insufficient_data"]
        assert listed[0]["estimate"] == estimate and listed[1]["estimate"] is None
        assert metric(client, url, 'textclf_monitor_drift_score{check="non_letter_share"}') == pytest.approx(
            checked["scores"]["non_letter_share"]["score"]
        )
        assert metric(client, url, "textclf_monitor_last_check_timestamp_seconds") > 0

        # The CronJob's command: one check through the service, its decision as JSON.
        cron = subprocess.run(
            [sys.executable, "-m", "textclf.cli", "check", "--monitor-url", url], capture_output=True, text=True
        )
        assert cron.returncode == 0, cron.stderr
        assert json.loads(cron.stdout)["window"]["size"] == 45
    unreachable = subprocess.run(
        [sys.executable, "-m", "textclf.cli", "check", "--monitor-url", url], capture_output=True, text=True
    )
    assert unreachable.returncode == 1 and "cannot reach the monitor" in unreachable.stderr


def test_textclf_serve_logs_every_protocol_into_the_monitor(tmp_path: Path, step_inputs: dict) -> None:
    """The local server's request logger and the monitor, both real: v2, v1 and /predict traffic becomes
    prediction records with the served version, and feedback joins them by the request id."""
    from tests.support.servers import textclf_server

    with (
        monitor_server(tmp_path, "--check-interval", "0") as monitor,
        # As on a cluster: a model directory served under the registry version it holds.
        textclf_server(
            tmp_path,
            "--model",
            str(step_inputs["model"]),
            "--set",
            "model_version=7",
            "--request-logger-url",
            f"{monitor.url}/events",
        ) as server,
        httpx.Client(timeout=30) as client,
    ):
        v2 = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["great film", "dull film"]}]}
        answered = client.post(f"{server.url}/v2/models/textclf/infer", json=v2, headers={"x-request-id": "v2-call"})
        assert answered.json()["model_version"] == "7"
        client.post(
            f"{server.url}/v1/models/textclf:predict", json={"instances": ["fine"]}, headers={"x-request-id": "v1-call"}
        )
        client.post(f"{server.url}/predict", json={"text": "awful"}, headers={"x-request-id": "simple-call"})
        client.post(f"{monitor.url}/feedback", json=[{"request_id": "v2-call", "index": 1, "label": "negative"}])
        for _ in range(100):
            if metric(client, monitor.url, "textclf_monitor_predictions_total") >= 4:
                break
            threading.Event().wait(0.2)
    window = MonitorStore(f"sqlite:///{tmp_path / 'monitor.db'}").window("textclf", "7", 10)
    assert sorted(zip(window["request_id"], window["index"], strict=True)) == [
        ("simple-call", 0),
        ("v1-call", 0),
        ("v2-call", 0),
        ("v2-call", 1),
    ]
    assert set(window["text"]) == {"great film", "dull film", "fine", "awful"}
    assert window.set_index(["request_id", "index"]).loc[("v2-call", 1), "feedback_label"] == "negative"


def test_pipeline_steps_read_a_runs_data_and_report_from_the_monitor(tmp_path: Path) -> None:
    """On a cluster the retraining run's steps fetch its data and report from the monitor's URLs."""
    from textclf.data.sources import DataSource, load_source
    from textclf.steps.drift_report import copy_drift_report

    episode = tmp_path / "retraining" / "textclf_3_episode-0"
    episode.mkdir(parents=True)
    (episode / "extra_train.csv").write_text('text,label\n"lol, gr8",positive\nugh,negative\n')
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "check-1.html").write_text("<html>retrain</html>")
    (tmp_path / "reports" / "check-1.json").write_text("{}")
    with monitor_server(tmp_path, "--check-interval", "0") as monitor:
        frame = load_source(DataSource(f"{monitor.url}/retraining/textclf_3_episode-0/extra_train.csv"))
        assert frame.to_dict("list") == {"text": ["lol, gr8", "ugh"], "label": ["positive", "negative"]}
        copy_drift_report(f"{monitor.url}/reports/check-1.html", tmp_path / "copied.html")
        assert (tmp_path / "copied.html").read_text() == "<html>retrain</html>"
        with httpx.Client() as client:
            assert client.get(f"{monitor.url}/retraining/textclf_3_episode-0/run.log").status_code == 404
            assert client.get(f"{monitor.url}/retraining/..%2F..%2Fetc/passwd").status_code == 404


def test_the_labelling_queue_serves_unlabelled_texts_and_takes_their_labels(tmp_path: Path, step_inputs: dict) -> None:
    options = ("--check-interval", "0", "--set", f"reference_model={step_inputs['model']}", "--set", "retrain=false")
    with monitor_server(tmp_path, *options) as monitor, httpx.Client(timeout=300) as client:
        url = monitor.url
        assert client.get(f"{url}/labelling/queue").json()["items"] == []
        for i in range(30):  # ten texts, each logged three times
            post_exchange(
                client, url, f"q{i}", [f"text number {i % 10} about the weather"], ["positive"], version="tiny"
            )
        queue = client.get(f"{url}/labelling/queue", params={"size": 8}).json()
        items, classes = queue["items"], queue["classes"]
        assert queue["model_version"] == "tiny" and queue["unlabelled"] == 30 and "positive" in classes
        assert len(items) == 8 and len({item["text"] for item in items}) == 8, "an exact repeat twice in one batch"
        assert all(0 <= item["uncertainty"] <= 1 and 0 <= item["novelty"] <= 1 for item in items)
        assert all(set(item["probabilities"]) == set(classes) for item in items)

        first = items[0]
        label = {"request_id": first["request_id"], "index": first["index"], "label": classes[0]}
        stored = client.post(f"{url}/feedback", params={"logged_only": "true"}, json=label)
        assert stored.status_code == 200 and stored.json()["matched_predictions"] == 1
        after = client.get(f"{url}/labelling/queue", params={"size": 30}).json()
        assert after["unlabelled"] == 29
        assert (first["request_id"], first["index"]) not in {(i["request_id"], i["index"]) for i in after["items"]}
        assert len(after["items"]) == 10, "one of each distinct text"

        # Bad input: a 4xx that says what to send, and nothing stored.
        for size in (10_000, 0, -1, "many"):
            refused = client.get(f"{url}/labelling/queue", params={"size": size})
            assert refused.status_code == 422, size
        assert "1 to 100" in client.get(f"{url}/labelling/queue", params={"size": 10_000}).json()["error"]
        unknown = client.post(
            f"{url}/feedback", params={"logged_only": "true"}, json={"request_id": "never-logged", "label": classes[0]}
        )
        assert unknown.status_code == 422 and "never-logged" in unknown.json()["error"]
        outside = client.post(f"{url}/feedback", params={"logged_only": "true"}, json={**label, "label": "no-such"})
        assert outside.status_code == 422 and "no-such" in outside.json()["error"]
        with MonitorStore(f"sqlite:///{tmp_path / 'monitor.db'}").engine.connect() as connection:
            rows = connection.execute(feedback_table.select()).all()
        assert [(row.request_id, row.label) for row in rows] == [(first["request_id"], classes[0])]

        board = client.get(f"{url}/dashboard").json()
        assert len(board["traffic"]) == 48 and sum(bucket["requests"] for bucket in board["traffic"]) == 30
        for params in ({"hours": 0}, {"hours": "nan"}, {"hours": 10**9}, {"buckets": 0}, {"buckets": 501}):
            assert client.get(f"{url}/dashboard", params=params).status_code == 422, params
