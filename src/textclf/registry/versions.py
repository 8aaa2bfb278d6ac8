"""Registered model versions in MLflow: created once per run, tagged (the tracking contract), and the
challenger/champion aliases."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from textclf.names import CHALLENGER_ALIAS, CHAMPION_ALIAS
from textclf.registry.gate import ACCURACY_TAG, PER_CLASS_F1_TAG

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient


def version_tags(metrics: dict[str, Any], data_fingerprint: str, commit: str, params: dict[str, Any]) -> dict[str, str]:
    """Tags every registered version carries (the "tracking" contract), as MLflow's string values."""
    tags = {
        ACCURACY_TAG: f"{metrics['accuracy']:.6f}",
        "test_macro_f1": f"{metrics['macro_f1']:.6f}",
        PER_CLASS_F1_TAG: json.dumps({label: round(s["f1"], 6) for label, s in metrics["per_class"].items()}),
        "data_fingerprint": data_fingerprint,
        "git_commit": commit,
    }
    tags.update({f"param.{name}": str(value) for name, value in params.items()})
    return tags


def register_version(
    client: MlflowClient,
    name: str,
    run_id: str,
    source: str,
    tags: dict[str, str],
    description: str = "",
    model_id: str | None = None,
) -> ModelVersion:
    """The run's model version, created once: registering the same run again returns the same version.
    `model_id`: the logged MLflow model `source` points at (`models:/m-...`)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="textclf text classifier")
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if existing:
        version = existing[0]
    else:
        version = client.create_model_version(
            name, source, run_id=run_id, tags=tags, description=description, model_id=model_id
        )
    for key, value in tags.items():
        if version.tags.get(key) != value:
            client.set_model_version_tag(name, version.version, key, value)
    client.set_registered_model_alias(name, CHALLENGER_ALIAS, version.version)
    return client.get_model_version(name, version.version)


def current_champion(client: MlflowClient, name: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None
