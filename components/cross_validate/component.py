from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from textclf.components import textclf_component


@textclf_component
def cross_validate(
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    preprocessing: Input[Artifact],
    cv_folds: int,
    validation_fraction: float,
    finetune: str,
    learning_rate: float,
    batch_size: int,
    epochs: int,
    weight_decay: float,
    warmup_ratio: float,
    lora_r: int,
    lora_alpha: int,
    lora_dropout: float,
    freeze_word_embeddings: bool,
    early_stopping_patience: int,
    class_weighting: str,
    seed: int,
    tracking_uri: str,
    mlflow_run_id: str,
    metrics: Output[Metrics],
    cross_validation: Output[Artifact],
) -> float:
    """k-fold cross-validation of the training recipe; returns the mean accuracy (0 when off).

    Args:
        train_data: the prepared (cleaned, tokenized) training split.
        validation_data: the prepared validation split; it joins the training rows, the test split stays held back.
        preprocessing: what preprocessing decided: labels, cleaning, base model, max length.
        cv_folds: number of stratified folds (at least 2); 0 = off: the step records that and ends.
        validation_fraction: share of each fold's training rows kept for early stopping.
        finetune: full, LoRA adapters (merged after), or auto = full for encoders up to 200M parameters, LoRA
            beyond.
        learning_rate: peak learning rate; 0 = 5e-4 for LoRA, 5e-5 for full.
        batch_size: training batch size.
        epochs: maximum epochs (early stopping may end sooner); 0 = auto: a few, more on small data
            (textclf.train.trainer.auto_epochs).
        weight_decay: AdamW weight decay.
        warmup_ratio: share of steps with linear warm-up.
        lora_r: LoRA rank.
        lora_alpha: LoRA scaling alpha.
        lora_dropout: LoRA dropout.
        freeze_word_embeddings: keep the word-embedding matrix frozen (full mode).
        early_stopping_patience: epochs without improvement before stopping; 0 = auto: longer in longer
            runs (textclf.train.trainer.auto_patience).
        class_weighting: class-weighted loss: auto = balanced weights when the largest class has 2x the rows of
            the smallest, balanced = always, none = never.
        seed: seed for the folds, splitting, initialisation and data order.
        tracking_uri: MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db.
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; the cross-validation run nests under it.
        metrics: mean and standard deviation of accuracy and macro F1 for the KFP UI.
        cross_validation: per-fold and per-class scores and their summary (JSON), read by the model card.
    """
    import json
    import tempfile
    from pathlib import Path

    from textclf.registry.tracking import resume_run
    from textclf.steps.cross_validate import run_cross_validate_step
    from textclf.train.trainer import TrainingParams

    # By name: every training parameter this step was given, whatever their order in the signature.
    params = TrainingParams.pick(locals())
    with resume_run(tracking_uri, mlflow_run_id), tempfile.TemporaryDirectory() as work_dir:
        result = run_cross_validate_step(
            Path(train_data.path),
            Path(validation_data.path),
            Path(preprocessing.path),
            params,
            cv_folds,
            validation_fraction,
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
