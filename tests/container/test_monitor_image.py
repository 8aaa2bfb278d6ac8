"""The monitor image, run as the chart runs it, beside MLflow's server from the components image (its command is
Compose's), on a network of their own: it stores request-logger events, runs a drift check whose report lands on
its volume, and a new container on the same volume finds both."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import pytest
import yaml

from tests.support.containers import (
    answers,
    http_json,
    network,
    readable_copy,
    running_container,
    volume,
    wait_until,
)
from tests.support.events import binary_cloud_event, v2_exchange
from tests.support.registry import NAME, register_two_versions
from textclf.names import INFERENCE_SERVICE_NAME, MLFLOW_PORT, MONITOR_PORT

pytestmark = [pytest.mark.container, pytest.mark.timeout(3600)]

REPOSITORY = Path(__file__).resolve().parents[2]
WORKDIR = "/var/lib/textclf-monitor"
PREDICTIONS = 30


def mlflow_command() -> list[str]:
    """Compose's MLflow server command, also admitting this host's calls through the published port."""
    command = yaml.safe_load((REPOSITORY / "docker-compose.yml").read_text())["services"]["mlflow"]["command"]
    return [f"{arg},127.0.0.1:*" if arg.startswith("--allowed-hosts=") else arg for arg in command]


def send_predictions(monitor_url: str, token: str, labels: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    texts = [f"review number {i}: the plot was {'great' if i % 2 else 'dull'} and the cast did fine" for i in range(5)]
    for exchange in range(PREDICTIONS // len(texts)):
        request, response = v2_exchange(texts, [labels[i % len(labels)] for i in range(len(texts))], "1")
        event_id = f"container-{exchange}-{uuid.uuid4().hex[:6]}"
        for kind, payload in (("request", request), ("response", response)):
            event_headers, body = binary_cloud_event(event_id, kind, payload, "1")
            import urllib.request

            call = urllib.request.Request(f"{monitor_url}/events", data=body, headers={**event_headers, **headers})
            with urllib.request.urlopen(call, timeout=30) as answer:
                assert answer.status in {200, 201, 202}


def test_the_monitor_image_keeps_events_and_a_checks_report_on_its_volume(
    images: dict[str, str], step_inputs: dict, tmp_path: Path
) -> None:
    import json

    model_dir = readable_copy(step_inputs["model"], tmp_path)
    labels = json.loads((model_dir / "textclf.json").read_text())["labels"]
    token = secrets.token_urlsafe(16)
    environment = {
        "TEXTCLF_MONITOR_TRACKING_URI": f"http://mlflow:{MLFLOW_PORT}",
        "TEXTCLF_MONITOR_REGISTERED_MODEL_NAME": NAME,
        "TEXTCLF_MONITOR_MODEL_NAMES": INFERENCE_SERVICE_NAME,
        "TEXTCLF_MONITOR_WRITE_TOKEN": token,
        "TEXTCLF_MONITOR_CHECK_INTERVAL_SECONDS": "0",
        "TEXTCLF_MONITOR_RETRAIN": "false",
        "TEXTCLF_MONITOR_POLICY__MIN_WINDOW_SIZE": "20",
    }
    env_options = [f"--env={name}={value}" for name, value in environment.items()]
    with network() as net, volume() as mlflow_data, volume() as monitor_data:
        mlflow_options = [
            f"--network={net}",
            "--network-alias=mlflow",
            f"--volume={mlflow_data}:/var/lib/mlflow",
            f"--publish=127.0.0.1::{MLFLOW_PORT}",
        ]
        with running_container(images["components"], *mlflow_command(), options=mlflow_options) as mlflow:
            tracking_uri = f"http://{mlflow.published(MLFLOW_PORT)}"
            wait_until(lambda: answers(f"{tracking_uri}/health"), 120, "MLflow answers", mlflow.logs)
            register_two_versions(tracking_uri, model_dir)
            monitor_options = [
                f"--network={net}",
                f"--volume={monitor_data}:{WORKDIR}",
                f"--publish=127.0.0.1::{MONITOR_PORT}",
                *env_options,
            ]
            with running_container(images["monitor"], options=monitor_options) as monitor:
                url = f"http://{monitor.published(MONITOR_PORT)}"
                wait_until(lambda: answers(f"{url}/health"), 120, "the monitor answers", monitor.logs)
                send_predictions(url, token, labels)
                outcome = http_json(f"{url}/checks", {}, {"Authorization": f"Bearer {token}"}, timeout=600)
                reports = http_json(f"{url}/reports")
                stored = monitor.exec("ls", f"{WORKDIR}/reports").stdout.split()
            assert outcome["window"]["size"] == PREDICTIONS and outcome["decision"] != "insufficient_data", outcome
            assert [report["name"] for report in reports] == [outcome["report"]]
            assert {f"{outcome['report']}.html", f"{outcome['report']}.json"} <= set(stored), stored
            # A new container on the same volume: the store and the reports were not in the container.
            with running_container(images["monitor"], options=monitor_options) as restarted:
                url = f"http://{restarted.published(MONITOR_PORT)}"
                wait_until(lambda: answers(f"{url}/health"), 120, "the restarted monitor answers", restarted.logs)
                checks = http_json(f"{url}/checks")
                assert http_json(f"{url}/reports") == reports
            assert [check["decision"] for check in checks] == [outcome["decision"]]
