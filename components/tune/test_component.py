from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset

pytestmark = pytest.mark.component


class Outputs(NamedTuple):
    recipe: dict
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
            "training": {
                "finetune": "lora",
                "batch_size": 8,
                "epochs": 2,
                "weight_decay": 0.0,
                "warmup_ratio": 0.0,
                "lora_r": 4,
                "lora_alpha": 8,
                "lora_dropout": 0.0,
                "early_stopping_patience": 1,
            },
            "seed": 0,
            "tuning": {"trials": 4, "optuna_storage": storage, "parallelism": 2, "max_train_rows": 30},
        }
        plan = plan_tuning(**study_inputs, data_fingerprint=step_inputs["fingerprint"], mlflow_run_id=fresh_run_id)
        with dsl.ParallelFor(plan.output) as worker:
            workers = tune_trials(
                **study_inputs,
                validation_data=dsl.importer(artifact_uri=str(prepared["validation"]), artifact_class=Dataset).output,
                study_name=worker.study_name,
                worker=worker.worker,
                tracking_uri=step_inputs["tracking_uri"],
                mlflow_run_id=worker.mlflow_run_id,
            )
        task = tune(
            **study_inputs,
            data_fingerprint=step_inputs["fingerprint"],
            tracking_uri=step_inputs["tracking_uri"],
            mlflow_run_id=fresh_run_id,
        ).after(workers)
        return Outputs(task.outputs["Output"], task.outputs["optimization_history"])

    outputs = only_tune().outputs
    recipe = outputs["recipe"]
    assert 1 <= recipe["epochs"] <= 2
    assert 1e-4 <= recipe["learning_rate"] <= 2e-3
    # The tuned recipe is the training group whole: what tuning did not search comes back as configured.
    assert (recipe["finetune"], recipe["lora_r"], recipe["class_weighting"]) == ("lora", 4, "auto")
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
