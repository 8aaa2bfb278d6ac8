from kfp.dsl import Artifact, Dataset, Input, Model, Output

from textclf.components import textclf_component


@textclf_component
def train(
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
    data_fingerprint: str,
    tracking_uri: str,
    mlflow_run_id: str,
    model: Output[Model],
) -> float:
    """Fine-tune with the chosen parameters; output the serving-ready model directory."""
    import tempfile
    from pathlib import Path

    from textclf.steps import run_train
    from textclf.tracking import resume_run
    from textclf.training import TrainingParams

    params = TrainingParams(
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
        summary = run_train(
            Path(train_data.path),
            Path(validation_data.path),
            Path(preprocessing.path),
            params,
            data_fingerprint,
            Path(work_dir),
            Path(model.path),
        )
    model.metadata.update({"framework": "transformers", **summary})
    return float(summary["validation_accuracy"])
