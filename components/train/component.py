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
    class_weighting: str,
    calibrate: bool,
    seed: int,
    data_fingerprint: str,
    workers: int,
    trainjob_namespace: str,
    trainjob_timeout_seconds: int,
    tracking_uri: str,
    mlflow_run_id: str,
    model: Output[Model],
) -> float:
    """Fine-tune with the chosen parameters; output the serving-ready model directory.

    Args:
        train_data: the prepared (cleaned, tokenized) training split.
        validation_data: the prepared validation split.
        preprocessing: what preprocessing decided: labels, cleaning, base model, max length.
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
        calibrate: fit a temperature on the validation split so scores match accuracy; serving applies it.
        seed: seed for splitting, initialisation, data order and tuning.
        data_fingerprint: content hash of the ingested (text, label) pairs.
        workers: data-parallel training processes: 1 trains here; more run torchrun with that many processes
            here, or in a cluster a Kubeflow Trainer TrainJob of that many nodes.
        trainjob_namespace: cluster runs with workers > 1: where the TrainJob runs.
        trainjob_timeout_seconds: cluster runs with workers > 1: how long the TrainJob may take.
        tracking_uri: MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db.
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; this step logs into it.
        model: the serving-ready model directory (the model-directory contract).
    """
    import os
    import tempfile
    from functools import partial
    from pathlib import Path

    from textclf.registry.tracking import resume_run
    from textclf.steps.train import run_train
    from textclf.train.trainer import TrainingParams

    # By name: every training parameter this step was given, whatever their order in the signature.
    params = TrainingParams.pick(locals())
    cluster_trainer = None
    if workers > 1 and os.environ.get("KUBERNETES_SERVICE_HOST"):
        from textclf.components.train.trainjob import train_on_trainjob

        cluster_trainer = partial(
            train_on_trainjob,
            workers=workers,
            namespace=trainjob_namespace,
            tracking_uri=tracking_uri,
            timeout_seconds=trainjob_timeout_seconds,
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
            workers,
            cluster_trainer,
        )
    model.metadata.update({"framework": "transformers", **summary})
    return float(summary["validation_accuracy"])
