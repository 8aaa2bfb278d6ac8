"""The tune step: an Optuna study on a sample of the training split, logged to the pipeline's MLflow run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from textclf.data.preprocess import Preprocessing
from textclf.train.trainer import TrainingParams


def run_tune(
    train_path: Path,
    validation_path: Path,
    preprocessing_path: Path,
    base_params: TrainingParams,
    trials: int,
    tune_max_train_rows: int,
    storage: str,
    data_fingerprint: str,
    work_dir: Path,
    history_path: Path,
    importance_path: Path,
) -> TrainingParams:
    """Search hyper-parameters on a sample of the training split; `trials=0` returns the given ones. Either way
    `finetune`, `epochs` and `early_stopping_patience` come back decided for the base model and the whole training
    split (`auto` resolved)."""
    import mlflow

    from textclf.train.tuning import STUDY_NAME_FORMAT, run_study, stratified_sample, write_study_plots

    preprocessing = Preprocessing.load(preprocessing_path)
    full_train = pd.read_parquet(train_path)
    # Trials train on a sample, but with the epochs the final run on every row gets, so their choice transfers.
    base_params = base_params.for_model(preprocessing.base_model).for_data(len(full_train))
    if trials == 0:
        message = "<html><body><p>Tuning skipped (trials=0): the configured parameters were used.</p></body></html>"
        history_path.write_text(message)
        importance_path.write_text(message)
        return base_params
    train = stratified_sample(full_train, tune_max_train_rows, base_params.seed)
    study_name = STUDY_NAME_FORMAT.format(
        fingerprint=data_fingerprint,
        finetune=base_params.finetune,
        base_model=Path(preprocessing.base_model).name,
    )
    result, study = run_study(
        preprocessing.base_model,
        train,
        pd.read_parquet(validation_path),
        preprocessing.label_map,
        base_params,
        trials,
        storage,
        study_name,
        work_dir,
        preprocessing.max_length,
        preprocessing.truncation,
    )
    write_study_plots(study, history_path, importance_path)
    mlflow.log_artifact(str(history_path), "tuning")
    mlflow.log_artifact(str(importance_path), "tuning")
    mlflow.log_params({f"tuned_{k}": v for k, v in result.best_params.to_dict().items()})
    mlflow.set_tags({"optuna_study": study_name, "optuna_completed_trials": str(result.completed_trials)})
    if result.best_value is not None:
        mlflow.log_metric(f"tuning_best_validation_{result.objective}", result.best_value)
    return result.best_params
