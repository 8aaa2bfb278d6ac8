from typing import NamedTuple

from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from textclf.components import textclf_component


@textclf_component
def plan_tuning(
    train_data: Input[Dataset],
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
    seed: int,
    trials: int,
    tune_parallelism: int,
    optuna_storage: str,
    data_fingerprint: str,
    mlflow_run_id: str,
) -> list:
    """Create the Optuna study the tuning workers share and enqueue the configured recipe as its first trial.

    Args:
        train_data: the prepared (cleaned, tokenized) training split.
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
        seed: seed for splitting, initialisation, data order and tuning.
        trials: Optuna trials; 0 skips tuning.
        tune_parallelism: trials run at once, one worker each (a pod in a cluster, a process under kfp.local).
        optuna_storage: Optuna RDB URL every worker reaches (PostgreSQL in a cluster); empty = sqlite file in the
            working directory.
        data_fingerprint: content hash of the ingested (text, label) pairs (the study is named after it).
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; the workers' trials nest under it.
    Returns:
        one item per worker for the pipeline's ParallelFor: `worker` (its index), `study_name`, `mlflow_run_id`.
        The run id travels in the items because kfp.local 2.17.3 hands every task-output parameter of a loop
        body the loop's item instead (`create_parameter_loop_iteration_task_spec` in
        kfp/local/orchestrator/task_spec_utils.py); pipeline inputs and artifacts reach the body intact.
    """
    from pathlib import Path

    from textclf.steps.tune import plan_tuning as plan
    from textclf.train.trainer import TrainingParams

    return plan(
        Path(train_data.path),
        Path(preprocessing.path),
        TrainingParams.pick(locals()),
        trials,
        tune_parallelism,
        optuna_storage,
        data_fingerprint,
        mlflow_run_id,
    )


@textclf_component
def tune_trials(
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
    seed: int,
    trials: int,
    tune_max_train_rows: int,
    optuna_storage: str,
    study_name: str,
    worker: int,
    tune_parallelism: int,
    tracking_uri: str,
    mlflow_run_id: str,
) -> int:
    """One tuning worker: trains trials of the shared study (each a nested MLflow run) until it holds `trials`.

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
        seed: seed for splitting, initialisation, data order and tuning.
        trials: Optuna trials the study should hold, all workers together.
        tune_max_train_rows: rows each trial trains on (0 = all).
        optuna_storage: Optuna RDB URL of the study; empty = sqlite file in the working directory.
        study_name: the study plan_tuning created ("" when tuning is off).
        worker: this worker's index.
        tune_parallelism: how many workers run at once (under kfp.local each keeps its share of the CPUs).
        tracking_uri: MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db.
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; trials nest under it.
    Returns:
        the trials this worker ran.
    """
    import tempfile
    from pathlib import Path

    from textclf.registry.tracking import resume_run
    from textclf.steps.tune import run_tune_worker
    from textclf.train.trainer import TrainingParams

    base = TrainingParams.pick(locals())
    with resume_run(tracking_uri, mlflow_run_id), tempfile.TemporaryDirectory() as work_dir:
        ran = run_tune_worker(
            Path(train_data.path),
            Path(validation_data.path),
            Path(preprocessing.path),
            base,
            trials,
            tune_max_train_rows,
            optuna_storage,
            study_name,
            Path(work_dir),
            worker,
            tune_parallelism,
        )
    print(f"tuning worker {worker} ran {ran} trials")
    return ran


@textclf_component
def tune(
    train_data: Input[Dataset],
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
    seed: int,
    trials: int,
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
    """The study's best recipe once every worker is done (highest validation score, the lowest trial number on a
    tie), with Optuna's plots, logged to the pipeline's MLflow run.

    Args:
        train_data: the prepared (cleaned, tokenized) training split.
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
        seed: seed for splitting, initialisation, data order and tuning.
        trials: Optuna trials; 0 skips tuning (the configured recipe comes back).
        optuna_storage: Optuna RDB URL of the study; empty = sqlite file in the working directory.
        data_fingerprint: content hash of the ingested (text, label) pairs (the study is named after it).
        tracking_uri: MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db.
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; this step logs into it.
        optimization_history: Optuna's optimization history (HTML).
        param_importance: Optuna's parameter importance (HTML).
    """
    from collections import namedtuple
    from pathlib import Path

    from textclf.registry.tracking import resume_run
    from textclf.steps.tune import run_tune
    from textclf.train.trainer import TrainingParams

    # By name: every training parameter this step was given, whatever their order in the signature.
    base = TrainingParams.pick(locals())
    with resume_run(tracking_uri, mlflow_run_id):
        best = run_tune(
            Path(train_data.path),
            Path(preprocessing.path),
            base,
            trials,
            optuna_storage,
            data_fingerprint,
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
