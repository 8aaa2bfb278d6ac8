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
    """Register the model directory as a version with alias `challenger`, once per MLflow run.

    Args:
        model: the serving-ready model directory (the model-directory contract).
        evaluation: test metrics and baselines (JSON).
        registered_model_name: MLflow registered model.
        data_fingerprint: content hash of the ingested (text, label) pairs.
        tracking_uri: MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db.
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; this step logs into it.
    """
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
    min_accuracy_gain: float,
    max_class_f1_drop: float,
    drift_window_data: str,
    require_approval: bool,
    max_behaviour_failure_rate: float,
    min_shadow_texts: int,
    min_shadow_agreement: float,
    shadow_accuracy_win: bool,
    tracking_uri: str,
    mlflow_run_id: str,
) -> bool:
    """True when the challenger beats the champion by the margin with no class's F1 dropping too far, passes
    its behavioural tests within the bound, and, given a labelled drift window, beats it on that window too.

    Args:
        registered_model_name: MLflow registered model.
        version: the registered version this step acts on.
        min_accuracy_gain: accuracy a challenger must gain to be promoted.
        max_class_f1_drop: largest per-class F1 drop a promotion allows.
        drift_window_data: labelled drift window (text, label): a challenger must also beat the champion on it.
        require_approval: hold a challenger trained on feedback labels for `textclf promote VERSION`.
        max_behaviour_failure_rate: largest share of failed cases any one behavioural test may have (1 = no
            condition); below 1, a challenger without behavioural test results is not promoted.
        min_shadow_texts: live texts a challenger must be shadowed on before it replaces a champion; one that
            passes waits as challenger for `textclf promote VERSION`; 0 = no shadow window.
        min_shadow_agreement: with a shadow window, least share of its texts labelled as the champion did.
        shadow_accuracy_win: with a shadow window, the challenger must beat the champion's accuracy on the
            window's texts that have feedback labels.
        tracking_uri: MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db.
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; this step logs into it.
    """
    from textclf.registry.tracking import resume_run
    from textclf.steps.register import run_gate

    with resume_run(tracking_uri, mlflow_run_id):
        decision = run_gate(
            registered_model_name,
            version,
            min_accuracy_gain,
            max_class_f1_drop,
            drift_window_data,
            require_approval,
            max_behaviour_failure_rate,
            min_shadow_texts,
            min_shadow_agreement,
            shadow_accuracy_win,
        )
    print(f"promotion gate for v{version}: {decision.verdict}: {decision.reason}")
    return decision.promote


@textclf_component
def promote(registered_model_name: str, version: str, tracking_uri: str, mlflow_run_id: str) -> str:
    """Move the `champion` alias to the version that passed the gate.

    Args:
        registered_model_name: MLflow registered model.
        version: the registered version this step acts on.
        tracking_uri: MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db.
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; this step logs into it.
    """
    from textclf.registry.tracking import resume_run
    from textclf.steps.register import run_promote

    with resume_run(tracking_uri, mlflow_run_id):
        run_promote(registered_model_name, version)
    print(f"{registered_model_name} v{version} is now champion")
    return version
