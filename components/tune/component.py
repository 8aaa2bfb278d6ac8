from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from textclf.components import textclf_component


@textclf_component
def plan_tuning(
    train_data: Input[Dataset],
    preprocessing: Input[Artifact],
    training: dict,
    seed: int,
    tuning: dict,
    data_fingerprint: str,
    mlflow_run_id: str,
) -> list:
    """Create the Optuna study the tuning workers share and enqueue the configured recipe as its first trial.

    Args:
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
    from textclf.train.tuning import TuningConfig

    study = TuningConfig.model_validate(tuning)
    return plan(
        Path(train_data.path),
        Path(preprocessing.path),
        TrainingParams.of(training, seed),
        study.trials,
        study.parallelism,
        study.optuna_storage,
        data_fingerprint,
        mlflow_run_id,
    )


@textclf_component
def tune_trials(
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    preprocessing: Input[Artifact],
    training: dict,
    seed: int,
    tuning: dict,
    study_name: str,
    worker: int,
    tracking_uri: str,
    mlflow_run_id: str,
) -> int:
    """One tuning worker: trains trials of the shared study (each a nested MLflow run) until it holds `trials`.

    Args:
        study_name: the study plan_tuning created ("" when tuning is off).
        worker: this worker's index.
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; trials nest under it.
    Returns:
        the trials this worker ran.
    """
    import tempfile
    from pathlib import Path

    from textclf.registry.tracking import resume_run
    from textclf.steps.tune import run_tune_worker
    from textclf.train.trainer import TrainingParams
    from textclf.train.tuning import TuningConfig

    study = TuningConfig.model_validate(tuning)
    with resume_run(tracking_uri, mlflow_run_id), tempfile.TemporaryDirectory() as work_dir:
        ran = run_tune_worker(
            Path(train_data.path),
            Path(validation_data.path),
            Path(preprocessing.path),
            TrainingParams.of(training, seed),
            study.trials,
            study.max_train_rows,
            study.optuna_storage,
            study_name,
            Path(work_dir),
            worker,
            study.parallelism,
        )
    print(f"tuning worker {worker} ran {ran} trials")
    return ran


@textclf_component
def tune(
    train_data: Input[Dataset],
    preprocessing: Input[Artifact],
    training: dict,
    seed: int,
    tuning: dict,
    data_fingerprint: str,
    tracking_uri: str,
    mlflow_run_id: str,
    optimization_history: Output[HTML],
    param_importance: Output[HTML],
) -> dict:
    """The study's best recipe once every worker is done (highest validation score, the lowest trial number on a
    tie), with Optuna's plots, logged to the pipeline's MLflow run.

    Args:
        data_fingerprint: content hash of the ingested (text, label) pairs (the study is named after it).
        optimization_history: Optuna's optimization history (HTML).
        param_importance: Optuna's parameter importance (HTML).
    Returns:
        the training recipe to train with (the `training` group's fields): the configured one with the tuned
        values, `finetune`, `epochs` and the patience decided for the base model and the data (with `trials` 0,
        the configured recipe so decided).
    """
    from pathlib import Path

    from textclf.registry.tracking import resume_run
    from textclf.steps.tune import run_tune
    from textclf.train.trainer import TrainingParams
    from textclf.train.tuning import TuningConfig

    study = TuningConfig.model_validate(tuning)
    with resume_run(tracking_uri, mlflow_run_id):
        best = run_tune(
            Path(train_data.path),
            Path(preprocessing.path),
            TrainingParams.of(training, seed),
            study.trials,
            study.optuna_storage,
            data_fingerprint,
            Path(optimization_history.path),
            Path(param_importance.path),
        )
    return best.replace(learning_rate=best.effective_learning_rate).recipe
