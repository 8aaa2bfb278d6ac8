import json
from pathlib import Path

import pytest
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model

pytestmark = pytest.mark.component


def test_evaluate_runs_under_kfp_local(kfp_local: Path, step_inputs: dict, fresh_run_id: str) -> None:
    from textclf.components.evaluate.component import evaluate

    @dsl.pipeline
    def only_evaluate() -> Artifact:
        task = evaluate(
            model=dsl.importer(artifact_uri=str(step_inputs["model"]), artifact_class=Model).output,
            train_split=dsl.importer(artifact_uri=str(step_inputs["raw"]["train"]), artifact_class=Dataset).output,
            test_data=dsl.importer(artifact_uri=str(step_inputs["prepared"]["test"]), artifact_class=Dataset).output,
            data="fixture",
            data_fingerprint=step_inputs["fingerprint"],
            registered_model_name="fixture-model",
            split_sizes=step_inputs["split_sizes"],
            seed=0,
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
    ):
        assert section in card
    assert "<img" in (task_dir / "error_analysis").read_text()
