"""The deploy step: serve the new champion, and keep the registry in step with what serves.

On a cluster the adapter passes the rollout (`deploy_on_cluster`, the KServe InferenceService path); locally
a running `textclf serve` is switched to the new champion. Either way the version's `deploy_state` records
the outcome, and a failed or rolled-back rollout moves `champion` back to the version still serving."""

from __future__ import annotations

from collections.abc import Callable

from textclf.deploy.local_server import deploy_locally, served_version
from textclf.deploy.rollout import DeployError


def run_deploy(
    model_name: str,
    version: str,
    serving_url: str,
    tracking_uri: str,
    deploy_on_cluster: Callable[[], str] | None = None,
) -> str:
    """What the deploy did (also the run's `deploy_outcome` tag); `DeployError` after the alias went back."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.registry.serving_state import record_deploy, restore_after_failed_deploy

    client = MlflowClient()
    try:
        if deploy_on_cluster is not None:
            outcome, served = deploy_on_cluster(), True
        else:
            local = deploy_locally(serving_url, model_name, version, tracking_uri)
            outcome, served = local.message, local.served
    except DeployError as error:
        # Locally the server reports what it still serves; on a cluster the previous revision serves, which is
        # the champion this version replaced.
        serving = None if deploy_on_cluster is not None else served_version(serving_url, model_name)
        restored = restore_after_failed_deploy(client, model_name, version, serving, str(error))
        mlflow.set_tags({"deploy_outcome": f"failed: {error}"[:5000], "champion_restored": restored})
        raise DeployError(f"{error}; {restored}") from None
    record_deploy(client, model_name, version, "serving" if served else "not_served", outcome)
    mlflow.set_tag("deploy_outcome", outcome[:5000])
    return outcome
