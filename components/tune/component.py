from typing import NamedTuple

from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from textclf.components import textclf_component


@textclf_component
def tune(
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    preprocessing: Input[Artifact],
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
    seed: int,
    trials: int,
    tune_max_train_rows: int,
    optuna_storage: str,
    data_fingerprint: str,
    tracking_uri: str,
    mlflow_run_id: str,
    optimization_history: Output[HTML],
    param_importance: Output[HTML],
) -> NamedTuple(
    "BestParams",
    learning_rate=float,
    batch_size=int,
    epochs=int,
    weight_decay=float,
    warmup_ratio=float,
    lora_r=int,
    lora_alpha=int,
    lora_dropout=float,
):
    """Optuna search (TPE, median pruning) over the training function; trials are nested MLflow runs."""
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from textclf.steps import run_tune
    from textclf.tracking import resume_run
    from textclf.training import TrainingParams

    base = TrainingParams(
        finetune,
        learning_rate,
        batch_size,
        epochs,
        weight_decay,
        warmup_ratio,
        lora_r,
        lora_alpha,
        lora_dropout,
        freeze_word_embeddings,
        early_stopping_patience,
        seed,
    )
    with resume_run(tracking_uri, mlflow_run_id), tempfile.TemporaryDirectory() as work_dir:
        best = run_tune(
            Path(train_data.path),
            Path(validation_data.path),
            Path(preprocessing.path),
            base,
            trials,
            tune_max_train_rows,
            optuna_storage,
            data_fingerprint,
            Path(work_dir),
            Path(optimization_history.path),
            Path(param_importance.path),
        )
    result = namedtuple(
        "BestParams",
        [
            "learning_rate",
            "batch_size",
            "epochs",
            "weight_decay",
            "warmup_ratio",
            "lora_r",
            "lora_alpha",
            "lora_dropout",
        ],
    )
    return result(
        best.effective_learning_rate,
        best.batch_size,
        best.epochs,
        best.weight_decay,
        best.warmup_ratio,
        best.lora_r,
        best.lora_alpha,
        best.lora_dropout,
    )
