"""The README's first command, end to end: the demo data, the packaged MiniLM, the default configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests.support.servers import free_port, textclf_server

pytestmark = pytest.mark.slow


# About 5 minutes alone on 2 cores; the limits leave room for a loaded CI machine.
@pytest.mark.timeout(2400)
def test_default_run_leaves_a_champion_that_beats_tfidf(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "textclf.cli", "run", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1800,
        # The deploy step must not switch a server someone runs on the default port.
        env={**os.environ, "TEXTCLF_SERVING__URL": f"http://127.0.0.1:{free_port()}"},
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri, tracking_uri)
    champion = client.get_model_version_by_alias("textclf", "champion")
    metrics = client.get_run(champion.run_id).data.metrics
    assert metrics["test_accuracy"] > metrics["baseline_tfidf_logreg_accuracy"]
    assert metrics["test_accuracy"] > metrics["baseline_base_model_untrained_accuracy"]

    evaluated = subprocess.run(
        [
            sys.executable,
            "-m",
            "textclf.cli",
            "evaluate",
            "--model",
            "models:/textclf@champion",
            "--data",
            "demo:tweets",
            "--tracking-uri",
            tracking_uri,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    # Another domain of the same task: the movie-review model should still beat chance on tweets.
    assert json.loads(evaluated.stdout)["accuracy"] > 0.6
    assert "textclf serve --model models:/textclf@champion" in completed.stdout + completed.stderr

    # The champion served as the deploy step said: clear sentiment gets the right label through v2.
    with textclf_server(tmp_path, "--tracking-uri", tracking_uri) as server:
        answer = httpx.post(
            f"{server.url}/v2/models/textclf/infer",
            json={
                "inputs": [
                    {
                        "name": "text",
                        "datatype": "BYTES",
                        "shape": [2],
                        "data": ["A wonderful, moving film. I loved every minute.", "Awful. A boring, painful mess."],
                    }
                ]
            },
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == str(champion.version)
        assert answer.json()["outputs"][0]["data"] == ["positive", "negative"]
