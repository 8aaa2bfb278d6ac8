"""The cluster's artifact path, offline: the MLflow server started exactly as the chart's Deployment starts it
(its command, flags and environment; only the listen address, port, store file and S3 endpoint are local, and
the local address joins its allowed hosts),
proxying artifacts into an S3 endpoint (moto) standing in for KFP's MinIO; the pipeline's register step
logging a model through it with no object-store credentials of its own; the deploy step's storage URI for the
registered version; and KServe's storage-initializer code (`kserve_storage`) downloading the model from there
with the credentials the predictor's annotated Secret provides, into a directory textclf serves from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from textclf.deploy.manifests import pod_spec, render_chart
from textclf.names import ARTIFACT_STORE_URI, MLFLOW_URL, OBJECT_STORE_SECRET
from textclf.runtime.local_processes import free_port, running_server

pytestmark = pytest.mark.integration
ACCESS_KEY, SECRET_KEY = "textclf-test-access", "textclf-test-secret"


@pytest.fixture(scope="module")
def object_store() -> Iterator[str]:
    """An S3 endpoint on 127.0.0.1 with KFP's bucket in it."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        ).create_bucket(Bucket=urlparse(ARTIFACT_STORE_URI).netloc)
        yield endpoint
    finally:
        server.stop()


def _local(argument: str, port: int, store: Path) -> str:
    flag = argument.partition("=")[0]
    return {
        "--host": "--host=127.0.0.1",
        "--port": f"--port={port}",
        "--backend-store-uri": f"--backend-store-uri=sqlite:///{store}",
        # The clients here reach it at 127.0.0.1:PORT; in the cluster by the names already listed.
        "--allowed-hosts": f"{argument},127.0.0.1:{port}",
    }.get(flag, argument)


@pytest.fixture(scope="module")
def chart_mlflow(object_store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    (deployment,) = [d for d in render_chart() if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlflow"]
    (container,) = pod_spec(deployment)["containers"]
    root = tmp_path_factory.mktemp("chart-mlflow")
    port = free_port()
    environment = {}
    for variable in container["env"]:
        if "valueFrom" in variable:
            assert variable["valueFrom"]["secretKeyRef"]["name"] == OBJECT_STORE_SECRET
            environment[variable["name"]] = {"AWS_ACCESS_KEY_ID": ACCESS_KEY}.get(variable["name"], SECRET_KEY)
        elif variable["name"] == "MLFLOW_S3_ENDPOINT_URL":
            environment[variable["name"]] = object_store
        else:
            environment[variable["name"]] = str(root) if variable["name"] == "HOME" else variable["value"]
    command = [str(Path(sys.executable).parent / container["command"][0]), *container["command"][1:]]
    arguments = [_local(argument, port, root / "mlflow.db") for argument in container["args"]]
    url = f"http://127.0.0.1:{port}"
    server_environment = {**os.environ, **environment, "AWS_DEFAULT_REGION": "us-east-1"}
    with running_server([*command, *arguments], f"{url}/health", root / "server.log", env=server_environment):
        yield url


def test_the_server_answers_its_cluster_names_and_refuses_other_hosts(chart_mlflow: str) -> None:
    search = f"{chart_mlflow}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(search, headers={"Host": urlparse(MLFLOW_URL).netloc}).status_code == 200
    assert httpx.get(search, headers={"Host": "mlflow.textclf:5000"}).status_code == 200
    assert httpx.get(search, headers={"Host": "attacker.example:5000"}).status_code == 403


def test_a_registered_model_reaches_the_object_store_and_kserve_downloads_it(
    chart_mlflow: str, object_store: str, step_inputs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.deploy.rollout import registered_storage_uri
    from textclf.steps.register import run_register

    # The pipeline steps hold no object-store credentials: the server proxies every artifact.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", chart_mlflow)
    previous = mlflow.get_tracking_uri()
    try:
        mlflow.set_tracking_uri(chart_mlflow)
        mlflow.set_registry_uri(chart_mlflow)
        with mlflow.start_run() as run:
            version = run_register(
                step_inputs["model"], step_inputs["evaluation"], run.info.run_id, "textclf", step_inputs["fingerprint"]
            )
        client = MlflowClient(chart_mlflow, chart_mlflow)
        source = client.get_model_version_download_uri("textclf", version)
        storage_uri = registered_storage_uri(client, "textclf", version, ARTIFACT_STORE_URI)
    finally:
        mlflow.set_tracking_uri(previous)
        mlflow.set_registry_uri(previous)
    assert source.startswith("mlflow-artifacts:")
    # The model directory inside the version's MLflow model, which is what KServe downloads.
    assert storage_uri.startswith(f"{ARTIFACT_STORE_URI}/") and storage_uri.endswith("/artifacts/model")

    # What KServe's storage initializer runs, with the environment its credential builder derives from the
    # predictor's Secret (keys) and annotations (serving.kserve.io/s3-endpoint, s3-usehttps=0).
    downloaded = tmp_path / "mnt-models"
    initializer = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL": object_store,
        "S3_USE_HTTPS": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    download = "import sys; from kserve_storage import Storage; Storage.download_files([sys.argv[1]], [sys.argv[2]])"
    result = subprocess.run(
        [sys.executable, "-c", download, storage_uri, str(downloaded)],
        env={**os.environ, **initializer},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (downloaded / "config.json").exists() and (downloaded / "textclf.json").exists()

    from textclf.serve.classifier import TextClassifier

    classifier = TextClassifier.load(downloaded)
    expected = json.loads((step_inputs["model"] / "config.json").read_text())["id2label"]
    assert classifier.predict(["what a wonderful film"]).labels[0] in expected.values()
