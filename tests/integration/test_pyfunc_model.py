"""The registered model is an MLflow model (issue 34): loaded by alias with `mlflow.pyfunc`, served by
`mlflow models serve`, its directory found by textclf's loaders and by KServe's storage path; versions registered
the old way (the directory as raw run artifacts) still load."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from textclf.runtime.local_processes import free_port, running_server

pytestmark = pytest.mark.integration

NAME = "pyfunc-test"
TEXTS = ["a wonderful film, I loved every minute", "dull and far too long"]


@pytest.fixture(scope="module")
def registry(step_inputs: dict) -> Iterator[dict]:
    """The fixture model registered by the register step in a fresh run, and made champion; the process's MLflow
    URIs point at the fixture store meanwhile."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.steps.register import run_register

    uri = step_inputs["tracking_uri"]
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        client = MlflowClient(uri, uri)
        run_id = client.create_run(client.get_experiment_by_name("fixtures").experiment_id).info.run_id
        with mlflow.start_run(run_id=run_id):
            version = run_register(step_inputs["model"], step_inputs["evaluation"], run_id, NAME, "fingerprint")
        client.set_registered_model_alias(NAME, "champion", version)
        yield {"uri": uri, "client": client, "version": version}
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


def test_the_champion_loads_by_alias_and_predicts_as_textclf_does(registry: dict, step_inputs: dict) -> None:
    import mlflow

    from textclf.serve.classifier import TextClassifier

    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    assert model.metadata.signature.inputs.input_names() == ["text"]
    answer = model.predict(pd.DataFrame({"text": TEXTS}))
    assert list(answer.columns) == ["label", "score", "probabilities"]
    # The backend `auto` chose when the model loaded, loaded again by textclf from the fixture's directory (the
    # fixture's random weights put every probability within 0.001 of a half: labels may differ, numbers not).
    backend = model.unwrap_python_model().classifier.backend.name
    expected = TextClassifier.load(step_inputs["model"], backend=backend).predict(TEXTS)
    probabilities = np.stack(answer["probabilities"])
    np.testing.assert_allclose(probabilities, expected.probabilities, atol=1e-4)
    np.testing.assert_allclose(answer["score"], probabilities.max(axis=1))
    assert answer["label"].tolist() == [model.metadata.metadata["labels"][i] for i in probabilities.argmax(axis=1)]
    assert model.metadata.metadata["labels"] == list(TextClassifier.load(step_inputs["model"]).labels)


def test_textclf_and_kserve_find_the_directory_inside_the_mlflow_model(registry: dict, tmp_path: Path) -> None:
    from textclf.deploy.rollout import model_directory_uri
    from textclf.names import MODEL_METADATA_FILE
    from textclf.registry.model_dir import MODEL_DIRECTORY_TAG
    from textclf.registry.model_uri import resolve_model_dir

    directory = resolve_model_dir(f"models:/{NAME}@champion", registry["uri"], tmp_path)
    assert (directory / MODEL_METADATA_FILE).exists()
    # The downloaded MLflow model, given as a directory (`textclf serve --model <that folder>`), resolves alike.
    assert resolve_model_dir(str(tmp_path), registry["uri"]) == directory
    version = registry["client"].get_model_version(NAME, registry["version"])
    from_the_run = resolve_model_dir(f"runs:/{version.run_id}/model", registry["uri"], tmp_path / "run")
    assert (from_the_run / MODEL_METADATA_FILE).exists()
    source = registry["client"].get_model_version_download_uri(NAME, registry["version"])
    inner = version.tags[MODEL_DIRECTORY_TAG]
    assert inner.startswith("artifacts/")
    assert model_directory_uri(source, version.tags) == f"{source.rstrip('/')}/{inner}"
    assert Path(source.removeprefix("file://"), inner, MODEL_METADATA_FILE).exists()


def test_a_version_registered_as_raw_artifacts_still_loads(registry: dict, step_inputs: dict, tmp_path: Path) -> None:
    """How textclf registered versions before they were MLflow models: the directory logged as run artifacts and
    the version created on that folder."""
    import mlflow

    from textclf.deploy.rollout import model_directory_uri
    from textclf.registry.model_uri import resolve_model_dir
    from textclf.registry.versions import register_version
    from textclf.serve.classifier import TextClassifier

    client = registry["client"]
    run_id = client.create_run(client.get_experiment_by_name("fixtures").experiment_id).info.run_id
    with mlflow.start_run(run_id=run_id):
        mlflow.log_artifacts(str(step_inputs["model"]), "model")
        source = f"{mlflow.get_run(run_id).info.artifact_uri}/model"
    old = register_version(client, NAME, run_id, source, {"test_accuracy": "0.5"})
    directory = resolve_model_dir(f"models:/{NAME}/{old.version}", registry["uri"], tmp_path)
    assert TextClassifier.load(directory).predict(TEXTS).labels
    download = client.get_model_version_download_uri(NAME, old.version)
    assert model_directory_uri(download, old.tags) == download.rstrip("/")


def test_mlflow_models_serve_answers_a_request(registry: dict, tmp_path: Path) -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion",
        "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    environment = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registry["uri"],
        "MLFLOW_REGISTRY_URI": registry["uri"],
        # As in an activated environment: MLflow starts the scoring server with the `uvicorn` on PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    url = f"http://127.0.0.1:{port}"
    with running_server(command, f"{url}/ping", tmp_path / "serve.log", env=environment, timeout=180):
        answer = httpx.post(f"{url}/invocations", json={"dataframe_records": [{"text": text} for text in TEXTS]})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert len(predictions) == len(TEXTS)
    assert {"label", "score", "probabilities"} <= set(predictions[0])
    assert abs(sum(predictions[0]["probabilities"]) - 1) < 1e-3
