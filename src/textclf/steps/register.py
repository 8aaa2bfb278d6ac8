"""The register, gate and promote steps: the challenger version, the promotion decision, the champion alias."""

from __future__ import annotations

import json
from pathlib import Path

from textclf.data.sources import DataSource
from textclf.registry.gate import (
    BEHAVIOUR_FAILURE_RATE_TAG,
    SHADOW_FIELDS,
    SHADOW_POLICY_TAG,
    TRAINED_ON_FEEDBACK_TAG,
    PromotionDecision,
    PromotionPolicy,
)
from textclf.steps.ingest import TRIGGER_TAG

INPUT_EXAMPLE_CHARS = 500
"""The logged model's input example: two texts of the reference sample, cut to this many characters."""


def run_register(model_dir: Path, evaluation_path: Path, run_id: str, model_name: str, data_fingerprint: str) -> str:
    """Log the model directory as an MLflow model (`textclf.serve.mlflow_model`) and register it as the `challenger`
    (once per run); returns the version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.registry.model_dir import MODEL_DIRECTORY_TAG, ModelDirectory
    from textclf.registry.tracking import git_commit
    from textclf.registry.versions import register_version, version_tags
    from textclf.serve.mlflow_model import log_pyfunc_model, model_directory_in

    evaluation = json.loads(evaluation_path.read_text())
    test_metrics = evaluation["test"]
    directory = ModelDirectory(model_dir)
    metadata = directory.metadata()
    examples = [text[:INPUT_EXAMPLE_CHARS] for text in directory.reference()["text"].head(2)]
    logged = log_pyfunc_model(model_dir, metadata.labels, examples)
    tags = version_tags(test_metrics, data_fingerprint, git_commit(), metadata.training_params)
    tags[MODEL_DIRECTORY_TAG] = model_directory_in(logged)
    if evaluation.get("behaviour"):
        tags[BEHAVIOUR_FAILURE_RATE_TAG] = f"{evaluation['behaviour']['max_failure_rate']:.6f}"
    # Where the training data came from travels with the version: the gate and a reviewer read it there.
    run_tags = mlflow.get_run(run_id).data.tags
    tags.update({name: run_tags[name] for name in (TRIGGER_TAG, TRAINED_ON_FEEDBACK_TAG) if name in run_tags})
    version = register_version(
        MlflowClient(), model_name, run_id, logged.model_uri, tags, f"data {data_fingerprint}", logged.model_id
    )
    mlflow.set_tags({"registered_model": model_name, "registered_version": str(version.version)})
    return str(version.version)


def run_gate(model_name: str, version: str, policy: PromotionPolicy, drift_window_data: str = "") -> PromotionDecision:
    """Compare the challenger with the champion on their registered test metrics (the frozen test split) and,
    for a run started by drift, on the labelled drift window too; log inputs and decision. A challenger held for
    its shadow window records the shadow conditions on its version, where `textclf promote` reads them."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.registry.gate import decide_promotion, score_of
    from textclf.registry.serving_state import heal_champion
    from textclf.registry.versions import current_champion

    client = MlflowClient()
    healed = heal_champion(client, model_name)
    if healed:
        mlflow.set_tag("champion_healed", healed)
    champion = current_champion(client, model_name)
    window_accuracy: dict[str, float] = {}
    if drift_window_data and champion is not None:
        from textclf.evaluate.any_model import evaluate_model_on_data

        window = DataSource(drift_window_data)
        for candidate in (version, str(champion.version)):
            metrics = evaluate_model_on_data(f"models:/{model_name}/{candidate}", window, mlflow.get_tracking_uri())
            window_accuracy[candidate] = metrics["accuracy"]
        mlflow.log_metrics(
            {
                "drift_window_accuracy": window_accuracy[version],
                "drift_window_champion_accuracy": window_accuracy[str(champion.version)],
            }
        )
    decision = decide_promotion(
        score_of(client.get_model_version(model_name, version), window_accuracy.get(version)),
        score_of(champion, window_accuracy.get(str(champion.version))) if champion is not None else None,
        policy,
    )
    mlflow.log_dict(decision.to_dict(), "registry/promotion_gate.json")
    if decision.awaiting_shadow:
        conditions = {name: getattr(decision.policy, name) for name in SHADOW_FIELDS}
        client.set_model_version_tag(model_name, version, SHADOW_POLICY_TAG, json.dumps(conditions))
    mlflow.set_tags({"promotion_decision": decision.verdict, "promotion_reason": decision.reason})
    return decision


def run_promote(model_name: str, version: str) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.registry.serving_state import promote

    promote(MlflowClient(), model_name, version)
    mlflow.set_tag("champion_version", version)
