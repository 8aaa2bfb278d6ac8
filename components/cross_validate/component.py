from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from textclf.components import textclf_component


@textclf_component
def cross_validate(
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    preprocessing: Input[Artifact],
    training: dict,
    seed: int,
    checks: dict,
    dataset: dict,
    tracking_uri: str,
    mlflow_run_id: str,
    metrics: Output[Metrics],
    cross_validation: Output[Artifact],
) -> float:
    """k-fold cross-validation of the training recipe; returns the mean accuracy (0 when off).

    Args:
        validation_data: the prepared validation split; it joins the training rows, the test split stays held back.
        checks: what the model is checked by; this step reads cv_folds (0 = off: it records that and ends).
        dataset: how the data's rows are split; each fold keeps validation_fraction of its training rows for early
            stopping.
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; the cross-validation run nests under it.
        metrics: mean and standard deviation of accuracy and macro F1 for the KFP UI.
        cross_validation: per-fold and per-class scores and their summary (JSON), read by the model card.
    """
    import json
    import tempfile
    from pathlib import Path

    from textclf.data.sources import DatasetConfig
    from textclf.evaluate.evaluation import QualityChecks
    from textclf.registry.tracking import resume_run
    from textclf.steps.cross_validate import run_cross_validate_step
    from textclf.train.trainer import TrainingParams

    with resume_run(tracking_uri, mlflow_run_id), tempfile.TemporaryDirectory() as work_dir:
        result = run_cross_validate_step(
            Path(train_data.path),
            Path(validation_data.path),
            Path(preprocessing.path),
            TrainingParams.of(training, seed),
            QualityChecks.model_validate(checks).cv_folds,
            DatasetConfig.model_validate(dataset).validation_fraction,
            Path(work_dir),
        )
    Path(cross_validation.path).write_text(json.dumps(result, indent=2))
    if not result["folds"]:
        return 0.0
    summary = result["summary"]
    for name in ("accuracy", "macro_f1"):
        metrics.log_metric(f"cv_{name}_mean", summary[name]["mean"])
        metrics.log_metric(f"cv_{name}_std", summary[name]["std"])
    return float(summary["accuracy"]["mean"])
