from kfp.dsl import Artifact, Input, Model

from textclf.components import textclf_component


@textclf_component
def register(
    model: Input[Model],
    evaluation: Input[Artifact],
    registered_model_name: str,
    data_fingerprint: str,
    tracking_uri: str,
    mlflow_run_id: str,
) -> str:
    """Register the model directory as a version with alias `challenger`, once per MLflow run."""
    from pathlib import Path

    from textclf.registry.tracking import resume_run
    from textclf.steps.register import run_register

    with resume_run(tracking_uri, mlflow_run_id):
        version = run_register(
            Path(model.path), Path(evaluation.path), mlflow_run_id, registered_model_name, data_fingerprint
        )
    print(f"registered {registered_model_name} v{version} as challenger")
    return version


@textclf_component
def promotion_gate(
    registered_model_name: str,
    version: str,
    promotion: dict,
    drift_window_data: str,
    tracking_uri: str,
    mlflow_run_id: str,
) -> bool:
    """True when the challenger beats the champion by the margin with no class's F1 dropping too far, passes
    its behavioural tests within the bound, and, given a labelled drift window, beats it on that window too."""
    from textclf.registry.gate import PromotionPolicy
    from textclf.registry.tracking import resume_run
    from textclf.steps.register import run_gate

    with resume_run(tracking_uri, mlflow_run_id):
        decision = run_gate(
            registered_model_name, version, PromotionPolicy.model_validate(promotion), drift_window_data
        )
    print(f"promotion gate for v{version}: {decision.verdict}: {decision.reason}")
    return decision.promote


@textclf_component
def promote(registered_model_name: str, version: str, tracking_uri: str, mlflow_run_id: str) -> str:
    """Move the `champion` alias to the version that passed the gate."""
    from textclf.registry.tracking import resume_run
    from textclf.steps.register import run_promote

    with resume_run(tracking_uri, mlflow_run_id):
        run_promote(registered_model_name, version)
    print(f"{registered_model_name} v{version} is now champion")
    return version
