"""The `helm test` hook's script, run against a real `textclf serve`: the request it sends and the answer it
reads are the v2 protocol the predictor speaks (only the cluster URL is swapped for the local server's)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from textclf.deploy.manifests import is_hook, render_chart

pytestmark = pytest.mark.integration
CLUSTER_PREDICTOR = "http://textclf-predictor.textclf.svc.cluster.local"


def test_the_hook_script_gets_a_label_from_a_running_predictor(serving_server) -> None:
    (hook,) = [d for d in render_chart() if is_hook(d)]
    (container,) = hook["spec"]["containers"]
    assert container["command"] == ["python", "-c"]
    script = container["args"][0]
    assert CLUSTER_PREDICTOR in script
    local = script.replace(CLUSTER_PREDICTOR, serving_server.url)
    result = subprocess.run([sys.executable, "-c", local], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("v2 inference answered: ")

    unreachable = script.replace(CLUSTER_PREDICTOR, serving_server.url + "/nowhere")
    failed = subprocess.run(
        [sys.executable, "-c", unreachable], capture_output=True, text=True, timeout=120, check=False
    )
    assert failed.returncode != 0
