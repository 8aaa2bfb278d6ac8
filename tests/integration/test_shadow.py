"""Shadow A/B with real processes: `textclf serve --shadow-model` in front of `textclf monitor`, an MLflow registry
holding the champion and a challenger that disagrees with it on every text (its label names are swapped)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.support.registry import NAME, register_two_versions
from tests.support.servers import monitor_server, textclf_server

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "shadow-test-admin"


def swapped_labels(model: Path, destination: Path) -> Path:
    shutil.copytree(model, destination)
    metadata = json.loads((destination / "textclf.json").read_text())
    metadata["labels"] = list(reversed(metadata["labels"]))
    (destination / "textclf.json").write_text(json.dumps(metadata))
    return destination


def shadow_comparison(monitor_url: str, texts: int, challenger_version: str = "", timeout: float = 60) -> dict:
    """The monitor's comparison once it holds `texts` shadowed texts of the challenger (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while True:
        comparison = httpx.get(
            f"{monitor_url}/shadow", params={"challenger_version": challenger_version, "window": 10_000}
        ).json()
        if comparison["texts"] >= texts or time.monotonic() > deadline:
            return comparison
        time.sleep(0.3)


def metric_total(url: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in httpx.get(f"{url}/metrics").text.splitlines()
        if line.startswith(f"{name}_total")
    )


@pytest.fixture
def registry(step_inputs: dict, tmp_path: Path) -> str:
    """Champion v1 (the fixture model) and challenger v2 (its labels swapped); returns the tracking URI."""
    from mlflow.tracking import MlflowClient

    from textclf.names import CHALLENGER_ALIAS

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    register_two_versions(tracking_uri, step_inputs["model"], swapped_labels(step_inputs["model"], tmp_path / "swap"))
    MlflowClient(tracking_uri, tracking_uri).set_registered_model_alias(NAME, CHALLENGER_ALIAS, "2")
    return tracking_uri


def test_shadowed_requests_reach_the_monitor_under_their_ids_and_clients_get_the_champion_s_answer(
    registry: str, step_inputs: dict, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from textclf.cli import app
    from textclf.names import CHALLENGER_ALIAS
    from textclf.registry.gate import ACCURACY_TAG, PER_CLASS_F1_TAG, SHADOW_POLICY_TAG
    from textclf.registry.serving_state import champion_version
    from textclf.serve.classifier import TextClassifier

    champion = TextClassifier.load(step_inputs["model"], backend="onnx")
    texts = ["A warm and funny film.", "Dull, slow and far too long.", "I would watch it again tomorrow."]
    # At the server's limits: 8 texts of 8,000 characters, hostile ones among them.
    long_texts = [("\u202e" + "ab\u0301 " * 2000)[:8000], "😀" * 8000, *(["word " * 1600] * 6)]
    (tmp_path / "monitor").mkdir()
    with (
        monitor_server(tmp_path / "monitor", "--check-interval", "0") as monitor,
        textclf_server(
            tmp_path,
            "--model",
            f"models:/{NAME}@champion",
            "--tracking-uri",
            registry,
            "--shadow-model",
            f"models:/{NAME}@{CHALLENGER_ALIAS}",
            "--request-logger-url",
            f"{monitor.url}/events",
            "--backend",
            "onnx",
            "--set=shadow_refresh_seconds=1",
            "--set=max_body_bytes=200000",
            "--set=max_text_chars=8000",
            "--set=max_texts_per_request=8",
        ) as server,
    ):
        with httpx.Client(base_url=server.url, timeout=60) as client:
            answers = [
                client.post("/predict", json={"text": texts[0]}, headers={"x-request-id": "shadow-1"}),
                # KServe's agent logs a request under the client's ce-id: the predictor takes the same id.
                client.post("/predict_batch", json={"texts": texts[1:]}, headers={"ce-id": "agent-7"}),
                client.post(
                    "/v2/models/textclf/infer",
                    json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [texts[0]]}]},
                    headers={"x-request-id": "v2-1"},
                ),
            ]
            started = time.perf_counter()
            at_limits = client.post("/v1/models/textclf:predict", json={"instances": long_texts})
            limits_seconds = time.perf_counter() - started
        assert [answer.status_code for answer in [*answers, at_limits]] == [200] * 4, at_limits.text
        assert limits_seconds < 30
        assert [answer.headers["x-request-id"] for answer in answers] == ["shadow-1", "agent-7", "v2-1"]
        expected = champion.predict(texts).labels
        assert answers[0].json()["label"] == expected[0]
        assert [p["label"] for p in answers[1].json()["predictions"]] == list(expected[1:])
        assert answers[2].json()["outputs"][0]["data"] == [expected[0]]
        assert [p["label"] for p in at_limits.json()["predictions"]] == list(champion.predict(long_texts).labels)

        comparison = shadow_comparison(monitor.url, 12)
        assert (comparison["champion_version"], comparison["challenger_version"]) == ("1", "2")
        assert (comparison["texts"], comparison["requests"], comparison["agreement"]) == (12, 4, 0.0)
        assert all(row["disagreement"] == 1.0 for row in comparison["per_class"].values())
        assert comparison["latency_ms"]["champion"]["p50"] > 0 < comparison["latency_ms"]["challenger"]["p50"]
        assert metric_total(server.url, "textclf_shadow_texts") == 12

        # Feedback joins both the champion's logged prediction and the shadow record under the client's id.
        labelled = httpx.post(f"{monitor.url}/feedback", json={"request_id": "shadow-1", "label": expected[0]})
        assert labelled.json() == {"stored": 1, "matched_predictions": 1}
        comparison = shadow_comparison(monitor.url, 12)
        assert comparison["labelled"] == 1
        assert comparison["accuracy"] == {"champion": 1.0, "challenger": 0.0}
        printed = CliRunner().invoke(app, ["compare", "--monitor-url", monitor.url, "--json"])
        assert printed.exit_code == 0 and json.loads(printed.stdout) == comparison
        table = CliRunner().invoke(app, ["compare", "--monitor-url", monitor.url])
        assert "agreement" in table.stdout and "challenger v2" in table.stdout

        # The gate held v2 for a shadow window of 10 texts with 50 % agreement: promote refuses it.
        client = MlflowClient(registry, registry)
        for version, accuracy in (("1", 0.5), ("2", 0.9)):
            client.set_model_version_tag(NAME, version, ACCURACY_TAG, str(accuracy))
            client.set_model_version_tag(NAME, version, PER_CLASS_F1_TAG, json.dumps({"positive": accuracy}))
        conditions = {"min_shadow_texts": 10, "min_shadow_agreement": 0.5, "shadow_accuracy_win": False}
        client.set_model_version_tag(NAME, "2", SHADOW_POLICY_TAG, json.dumps(conditions))
        promote = ["promote", "2", "--model-name", NAME, "--tracking-uri", registry, "--monitor-url", monitor.url]
        refused = CliRunner().invoke(app, promote)
        assert refused.exit_code == 2 and "agrees with the champion on 0.0000" in refused.output
        assert champion_version(client, NAME) == "1"
        relaxed = {**conditions, "min_shadow_agreement": 0.0}
        client.set_model_version_tag(NAME, "2", SHADOW_POLICY_TAG, json.dumps(relaxed))
        released = CliRunner().invoke(app, promote)
        assert released.exit_code == 0 and "shadow window qualifies: 10 texts" in released.output, released.output
        assert champion_version(client, NAME) == "2"

        # The alias moves to v1 (which agrees with the champion): the server loads it while serving.
        client.set_registered_model_alias(NAME, CHALLENGER_ALIAS, "1")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            httpx.post(f"{server.url}/predict", json={"text": texts[0]})
            again = shadow_comparison(monitor.url, 1, challenger_version="1", timeout=1)
            if again["texts"]:
                break
        assert again["challenger_version"] == "1" and again["agreement"] == 1.0


def test_a_full_shadow_queue_skips_texts_and_an_unload_keeps_the_server_answering(
    step_inputs: dict, tmp_path: Path
) -> None:
    challenger = swapped_labels(step_inputs["model"], tmp_path / "swap")
    with textclf_server(
        tmp_path,
        "--model",
        str(step_inputs["model"]),
        "--shadow-model",
        str(challenger),
        "--backend",
        "onnx",
        "--set=shadow_queue_texts=2",
        env={"TEXTCLF_SERVE_ADMIN_TOKEN": ADMIN_TOKEN},
    ) as server:

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                answers = await asyncio.gather(
                    *(client.post("/predict", json={"text": f"text number {i} of the burst"}) for i in range(64))
                )
            return [answer.status_code for answer in answers]

        assert asyncio.run(burst()) == [200] * 64

        def counted() -> tuple[float, float]:
            return (
                metric_total(server.url, "textclf_shadow_skipped_texts"),
                metric_total(server.url, "textclf_shadow_texts"),
            )

        # Every text is either shadowed or skipped once the queue has drained: wait for that, not a fixed time.
        deadline = time.monotonic() + 60
        while sum(counted()) < 64 and time.monotonic() < deadline:
            time.sleep(0.1)
        skipped, shadowed = counted()
        assert skipped > 0 and shadowed > 0 and skipped + shadowed == 64

        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        assert httpx.post(f"{server.url}/v2/repository/models/textclf/unload", headers=admin).status_code == 200
        assert httpx.post(f"{server.url}/predict", json={"text": "while unloaded"}).status_code == 503
        assert (
            httpx.post(f"{server.url}/v2/repository/models/textclf/load", headers=admin, timeout=120).status_code == 200
        )
        assert httpx.post(f"{server.url}/predict", json={"text": "loaded again"}).status_code == 200
        deadline = time.monotonic() + 10
        while metric_total(server.url, "textclf_shadow_texts") < shadowed + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert metric_total(server.url, "textclf_shadow_texts") == shadowed + 1


def test_a_shadow_that_cannot_be_loaded_leaves_the_champion_serving(step_inputs: dict, tmp_path: Path) -> None:
    with textclf_server(
        tmp_path, "--model", str(step_inputs["model"]), "--shadow-model", str(tmp_path / "nowhere"), "--backend", "onnx"
    ) as server:
        assert httpx.post(f"{server.url}/predict", json={"text": "still served"}).status_code == 200
        assert "shadow model" in server.log() and "not loaded" in server.log()
        assert metric_total(server.url, "textclf_shadow_texts") == 0
