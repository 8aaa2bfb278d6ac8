"""The deploy step under kfp.local: a running `textclf serve` following the champion alias switches to the
newly promoted version without a restart; with no server, the step says how to start one. A version the server
cannot load leaves the champion alias on the version still serving, and a champion never deployed is put back
by the next gate."""

import shutil
from pathlib import Path

import httpx
import pytest

from tests.support.registry import NAME, register_two_versions
from tests.support.servers import free_port, textclf_server

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "deploy-test-admin-token"


@pytest.fixture(autouse=True)
def _admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's model-repository routes need its admin token; the deploy step (a subprocess under
    kfp.local, which inherits this environment) sends it from the same variable."""
    from textclf.deploy.local_server import ADMIN_TOKEN_VARIABLE

    monkeypatch.setenv(ADMIN_TOKEN_VARIABLE, ADMIN_TOKEN)


def champion_server(tmp_path: Path, tracking_uri: str):
    return textclf_server(
        tmp_path, "--model", f"models:/{NAME}@champion", "--model-name", NAME, "--tracking-uri", tracking_uri
    )


def deploy_arguments(tracking_uri: str, run_id: str, serving_url: str) -> dict:
    return {
        "registered_model_name": NAME,
        "version": "2",
        "tracking_uri": tracking_uri,
        "mlflow_run_id": run_id,
        "serving": {"url": serving_url, "inference_service_name": NAME, "timeout_seconds": 60},
        "namespace": "textclf",
    }


def test_deploy_switches_a_running_server_to_the_new_champion(
    kfp_local: Path, step_inputs: dict, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from textclf.components.deploy.component import deploy
    from textclf.registry.serving_state import promote

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_ids = register_two_versions(tracking_uri, step_inputs["model"])
    with champion_server(tmp_path, tracking_uri) as server:
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
    assert MlflowClient(tracking_uri, tracking_uri).get_model_version(NAME, "2").tags["deploy_state"] == "not_served"


def test_a_version_the_server_cannot_load_leaves_the_champion_on_the_version_still_serving(
    step_inputs: dict, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from textclf.deploy.rollout import DeployError
    from textclf.registry.serving_state import champion_version, promote
    from textclf.registry.tracking import resume_run
    from textclf.steps.deploy import run_deploy

    broken = tmp_path / "broken-model"
    shutil.copytree(step_inputs["model"], broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"not a model")
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_ids = register_two_versions(tracking_uri, step_inputs["model"], broken)
    client = MlflowClient(tracking_uri, tracking_uri)
    with champion_server(tmp_path, tracking_uri) as server:
        promote(client, NAME, "2")
        with resume_run(tracking_uri, run_ids[1]), pytest.raises(DeployError, match="moved back from v2 to v1"):
            run_deploy(NAME, "2", server.url, tracking_uri)
        assert httpx.get(f"{server.url}/health").json()["model_version"] == "1", "the server kept serving v1"
        assert httpx.post(f"{server.url}/predict", json={"text": "still serving"}).status_code == 200
    assert champion_version(client, NAME) == "1"
    assert client.get_model_version(NAME, "2").tags["deploy_state"] == "failed"
    assert "moved back" in client.get_run(run_ids[1]).data.tags["champion_restored"]


def test_a_champion_promoted_but_never_deployed_is_healed_back_to_the_version_served(
    step_inputs: dict, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from textclf.registry.serving_state import champion_version, heal_champion, promote

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    register_two_versions(tracking_uri, step_inputs["model"])
    client = MlflowClient(tracking_uri, tracking_uri)
    promote(client, NAME, "2")  # ... and the run stops before its deploy step

    assert "never deployed" in heal_champion(client, NAME)
    assert champion_version(client, NAME) == "1"
    assert heal_champion(client, NAME) is None, "healing twice changes nothing"
