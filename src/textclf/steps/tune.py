"""The tune steps: plan an Optuna study on a sample of the training split, run its trials in one or more workers
(processes or pods sharing the study's RDB storage), and log the best recipe to the pipeline's MLflow run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from textclf.data.preprocess import Preprocessing
from textclf.train.trainer import TrainingParams


def _decided(base_params: TrainingParams, preprocessing: Preprocessing, full_train: pd.DataFrame) -> TrainingParams:
    # Trials train on a sample, but with the epochs the final run on every row gets, so their choice transfers.
    return base_params.for_model(preprocessing.base_model).for_data(len(full_train))


def study_name(data_fingerprint: str, base_params: TrainingParams, base_model: str) -> str:
    """Every step derives the study's name from the same inputs: the same data, fine-tuning mode and base model
    tuned again resume the same study."""
    from textclf.train.tuning import STUDY_NAME_FORMAT

    return STUDY_NAME_FORMAT.format(
        fingerprint=data_fingerprint, finetune=base_params.finetune, base_model=Path(base_model).name
    )


def plan_tuning(
    train_path: Path,
    preprocessing_path: Path,
    base_params: TrainingParams,
    trials: int,
    parallelism: int,
    storage: str,
    data_fingerprint: str,
    mlflow_run_id: str,
) -> list[dict[str, str | int]]:
    """Create the study the workers share (its generations as wide as `parallelism`) and enqueue the configured
    recipe once. Returns one item per worker: its index, the study's name ("" when `trials=0`) and the MLflow run
    its trials nest under."""
    from textclf.train.tuning import prepare_study

    workers = max(1, parallelism)
    name = ""
    if trials > 0:
        preprocessing = Preprocessing.load(preprocessing_path)
        decided = _decided(base_params, preprocessing, pd.read_parquet(train_path))
        name = study_name(data_fingerprint, decided, preprocessing.base_model)
        prepare_study(storage, name, decided, workers)
    return [{"worker": index, "study_name": name, "mlflow_run_id": mlflow_run_id} for index in range(workers)]


def run_tune_worker(
    train_path: Path,
    validation_path: Path,
    preprocessing_path: Path,
    base_params: TrainingParams,
    trials: int,
    tune_max_train_rows: int,
    storage: str,
    name: str,
    work_dir: Path,
    worker: int = 0,
    workers: int = 1,
) -> int:
    """One worker (`worker` of `workers`) of the planned study `name`; returns the trials it ran (0 when tuning is
    off). Workers on one machine (not in pods of their own) each keep their share of its CPUs."""
    import os

    from textclf.runtime.cpu import share_cpus
    from textclf.train.tuning import run_worker, stratified_sample

    if trials == 0:
        return 0
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        share_cpus(worker, workers)
    preprocessing = Preprocessing.load(preprocessing_path)
    full_train = pd.read_parquet(train_path)
    decided = _decided(base_params, preprocessing, full_train)
    return run_worker(
        preprocessing.base_model,
        stratified_sample(full_train, tune_max_train_rows, decided.seed),
        pd.read_parquet(validation_path),
        preprocessing.label_map,
        decided,
        trials,
        storage,
        name,
        work_dir,
        preprocessing.max_length,
        preprocessing.truncation,
    )


def run_tune(
    train_path: Path,
    preprocessing_path: Path,
    base_params: TrainingParams,
    trials: int,
    storage: str,
    data_fingerprint: str,
    history_path: Path,
    importance_path: Path,
) -> TrainingParams:
    """The study's best recipe once its workers are done; `trials=0` returns the given parameters. Either way
    `finetune`, `epochs` and `early_stopping_patience` come back decided for the base model and the whole training
    split (`auto` resolved)."""
    import mlflow

    from textclf.train.parallel_study import open_study
    from textclf.train.tuning import summarize_study, write_study_plots

    preprocessing = Preprocessing.load(preprocessing_path)
    full_train = pd.read_parquet(train_path)
    decided = _decided(base_params, preprocessing, full_train)
    if trials == 0:
        message = "<html><body><p>Tuning skipped (trials=0): the configured parameters were used.</p></body></html>"
        history_path.write_text(message)
        importance_path.write_text(message)
        return decided
    name = study_name(data_fingerprint, decided, preprocessing.base_model)
    study = open_study(storage, name, decided.seed)
    result = summarize_study(study, decided, full_train, preprocessing.label_map)
    write_study_plots(study, history_path, importance_path)
    mlflow.log_artifact(str(history_path), "tuning")
    mlflow.log_artifact(str(importance_path), "tuning")
    mlflow.log_params({f"tuned_{k}": v for k, v in result.best_params.to_dict().items()})
    mlflow.set_tags({"optuna_study": name, "optuna_completed_trials": str(result.completed_trials)})
    if result.best_value is not None:
        mlflow.log_metric(f"tuning_best_validation_{result.objective}", result.best_value)
    return result.best_params
