"""End to end on a kind cluster, driven by the Makefile targets docs/deploying.md gives a new user: create the
cluster, install Kubeflow Pipelines and KServe, build and load the images, deploy the stack with Helm, run the
training pipeline through KFP, wait for the champion's InferenceService and ask it for a prediction (v2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from textclf.deploy.rollout import ServingPlan
from textclf.names import INFERENCE_SERVICE_NAME, SERVING_NAMESPACE

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(5400)]
REPO = Path(__file__).resolve().parents[2]
PREDICTOR = "http://localhost:8090"
MONITOR = "http://localhost:8000"
CONTEXT = "kind-textclf"


def make(*targets: str, **variables: str) -> None:
    settings = [f"{name}={value}" for name, value in variables.items()]
    subprocess.run(["make", *targets, *settings], cwd=REPO, check=True, timeout=3600)


def kubectl(*arguments: str) -> str:
    command = ["kubectl", "--context", CONTEXT, *arguments]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800).stdout


@pytest.fixture(scope="module")
def stack() -> None:
    missing = [tool for tool in ("docker", "kind", "kubectl", "helm") if shutil.which(tool) is None]
    assert not missing, f"the cluster test needs {', '.join(missing)} on PATH"
    make("cluster", "install-kfp", "install-kserve", "install-metrics-server", "load", "deploy")


def test_a_pipeline_run_on_kfp_serves_its_champion_through_kserve(stack: None) -> None:
    # `--wait` fails the target unless the KFP run succeeds; the run is then visible in the KFP UI.
    make("pipeline", PIPELINE_ARGS="--wait --timeout 3600 --set training.epochs=1 --set tuning.trials=1")
    kubectl(
        "-n",
        SERVING_NAMESPACE,
        "wait",
        "--for=condition=Ready",
        f"inferenceservice/{INFERENCE_SERVICE_NAME}",
        "--timeout=900s",
    )
    # The default autoscaler: KServe names the HPA after the predictor (hpa_reconciler.go, createHPA).
    predictor = f"{INFERENCE_SERVICE_NAME}-predictor"
    hpa = json.loads(kubectl("-n", SERVING_NAMESPACE, "get", "hpa", predictor, "-o", "json"))
    plan = ServingPlan()
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (plan.min_replicas, plan.max_replicas)
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["target"]["averageUtilization"] == plan.cpu_target_utilization
    request = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["great fun", "dull mess"]}]}
    answer = httpx.post(f"{PREDICTOR}/v2/models/{INFERENCE_SERVICE_NAME}/infer", json=request, timeout=120)
    answer.raise_for_status()
    labels = next(o["data"] for o in answer.json()["outputs"] if o["name"] == "label")
    assert len(labels) == 2 and all(labels)
    subprocess.run(["helm", "--kube-context", CONTEXT, "test", "textclf", "-n", SERVING_NAMESPACE], check=True)
    # The predictor's request logger (asynchronous) reached the monitor: the predictions are in its store.
    deadline = time.monotonic() + 120
    while httpx.get(f"{MONITOR}/quality", timeout=60).json()["model_version"] is None:
        assert time.monotonic() < deadline, "no prediction reached the monitor within 120 s"
        time.sleep(5)
