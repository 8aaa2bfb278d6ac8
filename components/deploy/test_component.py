"""The deploy step under kfp.local: a running `textclf serve` following the champion alias switches to the
newly promoted version without a restart; with no server, the step says how to start one."""

from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, textclf_server

pytestmark = pytest.mark.integration

NAME = "deploy-test"


def register_two_versions(tracking_uri: str, model_dir: Path) -> list[str]:
    """Two registered versions of the fixture model, each from its own run, version 1 as champion."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.registry.tracking import configure, ensure_experiment
    from textclf.registry.versions import promote, register_version

    previous = mlflow.get_tracking_uri()
    try:
        experiment_id = ensure_experiment("deploy-test", tracking_uri)
        configure(tracking_uri)
        client = MlflowClient(tracking_uri, tracking_uri)
        run_ids = []
        for _ in range(2):
            with mlflow.start_run(experiment_id=experiment_id) as run:
                mlflow.log_artifacts(str(model_dir), "model")
                register_version(client, NAME, run.info.run_id, f"{run.info.artifact_uri}/model", {})
                run_ids.append(run.info.run_id)
        promote(client, NAME, "1")
        return run_ids
    finally:
        mlflow.set_tracking_uri(previous)
        mlflow.set_registry_uri(previous)


def deploy_arguments(tracking_uri: str, run_id: str, serving_url: str) -> dict:
    return {
        "registered_model_name": NAME,
        "version": "2",
        "tracking_uri": tracking_uri,
        "mlflow_run_id": run_id,
        "serving_url": serving_url,
        "serving_namespace": "textclf",
        "inference_service_name": NAME,
        "serving_image": "unused-locally",
        "artifact_store_uri": "",
        "request_logger_url": "",
        "canary_traffic_percent": 10,
        "deploy_timeout_seconds": 60,
    }


def test_deploy_switches_a_running_server_to_the_new_champion(
    kfp_local: Path, step_inputs: dict, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from textclf.components.deploy.component import deploy
    from textclf.registry.versions import promote

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_ids = register_two_versions(tracking_uri, step_inputs["model"])
    with textclf_server(
        tmp_path, "--model", f"models:/{NAME}@champion", "--model-name", NAME, "--tracking-uri", tracking_uri
    ) as server:
        assert httpx.get(f"{server.url}/health").json()["model_version"] == "1"
        promote(MlflowClient(tracking_uri, tracking_uri), NAME, "2")

        outcome = deploy(**deploy_arguments(tracking_uri, run_ids[1], server.url)).output

        assert "now serves deploy-test version 2" in outcome
        health = httpx.get(f"{server.url}/health").json()
        assert health["model_version"] == "2"
        assert httpx.post(f"{server.url}/predict", json={"text": "still serving"}).status_code == 200
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'model_version="2"' in metrics and 'model_version="1"' not in metrics

    no_server = deploy(**deploy_arguments(tracking_uri, run_ids[1], f"http://127.0.0.1:{free_port()}")).output
    assert f"textclf serve --model models:/{NAME}@champion --tracking-uri {tracking_uri}" in no_server
    run = MlflowClient(tracking_uri, tracking_uri).get_run(run_ids[1])
    assert "textclf serve" in run.data.tags["deploy_outcome"]
