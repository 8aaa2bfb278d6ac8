import json
from pathlib import Path

import pytest
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model

pytestmark = pytest.mark.component


def test_evaluate_runs_under_kfp_local(kfp_local: Path, step_inputs: dict, fresh_run_id: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from textclf.components.evaluate.component import evaluate

    cross_validation = tmp_path / "cross_validation.json"
    cross_validation.write_text(
        json.dumps(
            {
                "summary": {
                    "folds": 2,
                    "accuracy": {"mean": 0.7, "std": 0.1},
                    "macro_f1": {"mean": 0.65, "std": 0.05},
                    "per_class_f1": {"negative": {"mean": 0.6, "std": 0.1}, "positive": {"mean": 0.7, "std": 0.0}},
                },
                "folds": [
                    {"fold": n, "train_rows": 30, "test_rows": 15, "epochs_run": 1, "accuracy": a, "macro_f1": f}
                    for n, a, f in ((1, 0.6, 0.6), (2, 0.8, 0.7))
                ],
            }
        )
    )

    @dsl.pipeline
    def only_evaluate() -> Artifact:
        task = evaluate(
            model=dsl.importer(artifact_uri=str(step_inputs["model"]), artifact_class=Model).output,
            train_split=dsl.importer(artifact_uri=str(step_inputs["raw"]["train"]), artifact_class=Dataset).output,
            test_data=dsl.importer(artifact_uri=str(step_inputs["prepared"]["test"]), artifact_class=Dataset).output,
            cross_validation=dsl.importer(artifact_uri=str(cross_validation), artifact_class=Artifact).output,
            data="fixture",
            data_fingerprint=step_inputs["fingerprint"],
            registered_model_name="fixture-model",
            split_sizes=step_inputs["split_sizes"],
            seed=0,
            checks={"behaviour_tests": "sentiment"},
            tracking_uri=step_inputs["tracking_uri"],
            mlflow_run_id=fresh_run_id,
        )
        return task.outputs["evaluation"]

    evaluation = json.loads(Path(only_evaluate().output.path).read_text())
    assert set(evaluation["baselines"]) == {"tfidf_logreg", "base_model_untrained"}
    assert evaluation["test"]["samples"] == step_inputs["split_sizes"]["test"]
    task_dir = next(kfp_local.glob("*/evaluate"))
    assert (task_dir / "confusion_matrix_png").read_bytes().startswith(b"\x89PNG")
    card = (task_dir / "model_card").read_text()
    for section in (
        "## Data",
        "## Training configuration",
        "## Test metrics",
        "## Baselines",
        "## Intended use",
        "## Limits",
        "## Behavioural tests",
        "## Cross-validation",
    ):
        assert section in card
    assert "| negation lowers a positive | DIR | Negation |" in card
    assert "0.7000 ± 0.1000" in card
    assert {test["name"] for test in evaluation["behaviour"]["tests"]} >= {"typos", "casing", "positive words"}
    logged = MlflowClient(step_inputs["tracking_uri"]).get_run(fresh_run_id).data.metrics
    assert logged["behaviour_max_failure_rate"] == evaluation["behaviour"]["max_failure_rate"]
    assert "behaviour_negation_lowers_a_positive_failure_rate" in logged
    assert "<img" in (task_dir / "error_analysis").read_text()
