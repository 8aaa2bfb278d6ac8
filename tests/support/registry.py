"""A registry with two versions of the fixture model, for the deploy and promotion tests."""

from __future__ import annotations

from pathlib import Path

NAME = "deploy-test"


def register_two_versions(tracking_uri: str, model_dir: Path, second_model_dir: Path | None = None) -> list[str]:
    """Two registered versions of the fixture model, each from its own run, version 1 as champion (and
    serving: its deploy_state says so)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.registry.serving_state import promote, record_deploy
    from textclf.registry.tracking import configure, ensure_experiment
    from textclf.registry.versions import register_version

    previous = mlflow.get_tracking_uri()
    try:
        experiment_id = ensure_experiment("deploy-test", tracking_uri)
        configure(tracking_uri)
        client = MlflowClient(tracking_uri, tracking_uri)
        run_ids = []
        for directory in (model_dir, second_model_dir or model_dir):
            with mlflow.start_run(experiment_id=experiment_id) as run:
                mlflow.log_artifacts(str(directory), "model")
                register_version(client, NAME, run.info.run_id, f"{run.info.artifact_uri}/model", {})
                run_ids.append(run.info.run_id)
        promote(client, NAME, "1")
        record_deploy(client, NAME, "1", "serving", "the fixture's first version")
        return run_ids
    finally:
        mlflow.set_tracking_uri(previous)
        mlflow.set_registry_uri(previous)
