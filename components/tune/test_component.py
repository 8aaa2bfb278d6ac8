from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset

pytestmark = pytest.mark.component


class Outputs(NamedTuple):
    epochs: int
    learning_rate: float
    history: HTML


def test_two_tuning_workers_share_one_study_under_kfp_local(
    kfp_local: Path, step_inputs: dict, fresh_run_id: str, tmp_path: Path
) -> None:
    """plan → two workers (ParallelFor: two processes under kfp.local) → best recipe, as the pipeline runs it."""
    import mlflow
    import optuna

    from textclf.components.tune.component import plan_tuning, tune, tune_trials

    prepared = step_inputs["prepared"]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"

    @dsl.pipeline
    def only_tune() -> Outputs:
        study_inputs = {
            "train_data": dsl.importer(artifact_uri=str(prepared["train"]), artifact_class=Dataset).output,
            "preprocessing": dsl.importer(
                artifact_uri=str(step_inputs["preprocessing"]), artifact_class=Artifact
            ).output,
            "finetune": "lora",
            "class_weighting": "auto",
            "learning_rate": 0.0,
            "batch_size": 8,
            "epochs": 2,
            "weight_decay": 0.0,
            "warmup_ratio": 0.0,
            "lora_r": 4,
            "lora_alpha": 8,
            "lora_dropout": 0.0,
            "freeze_word_embeddings": True,
            "early_stopping_patience": 1,
            "seed": 0,
            "trials": 4,
            "optuna_storage": storage,
        }
        plan = plan_tuning(
            **study_inputs, tune_parallelism=2, data_fingerprint=step_inputs["fingerprint"], mlflow_run_id=fresh_run_id
        )
        with dsl.ParallelFor(plan.output) as worker:
            workers = tune_trials(
                **study_inputs,
                validation_data=dsl.importer(artifact_uri=str(prepared["validation"]), artifact_class=Dataset).output,
                tune_max_train_rows=30,
                study_name=worker.study_name,
                worker=worker.worker,
                tune_parallelism=2,
                tracking_uri=step_inputs["tracking_uri"],
                mlflow_run_id=worker.mlflow_run_id,
            )
        task = tune(
            **study_inputs,
            data_fingerprint=step_inputs["fingerprint"],
            tracking_uri=step_inputs["tracking_uri"],
            mlflow_run_id=fresh_run_id,
        ).after(workers)
        return Outputs(task.outputs["epochs"], task.outputs["learning_rate"], task.outputs["optimization_history"])

    outputs = only_tune().outputs
    assert 1 <= outputs["epochs"] <= 2
    assert 1e-4 <= outputs["learning_rate"] <= 2e-3
    assert "plotly" in Path(outputs["history"].path).read_text()

    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    finished = [
        trial for trial in study.trials if trial.state.is_finished() and not trial.user_attrs.get("over_budget")
    ]
    assert [trial.number for trial in finished] == [0, 1, 2, 3]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(step_inputs["tracking_uri"])
    try:
        trials = mlflow.search_runs(
            search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{fresh_run_id}'"
        )
    finally:
        mlflow.set_tracking_uri(previous)  # later tests must not inherit this store
    assert sorted(trials["tags.mlflow.runName"]) == [f"trial-{number}" for number in range(4)]
