import json
from pathlib import Path

import pandas as pd
import pytest
from kfp import dsl
from kfp.dsl import Artifact, Dataset

pytestmark = pytest.mark.component


def test_cross_validate_runs_under_kfp_local_and_off_by_default(
    kfp_local: Path, step_inputs: dict, fresh_run_id: str
) -> None:
    from textclf.components.cross_validate.component import cross_validate

    prepared = step_inputs["prepared"]

    @dsl.pipeline
    def only_cross_validate(cv_folds: int) -> Artifact:
        task = cross_validate(
            train_data=dsl.importer(artifact_uri=str(prepared["train"]), artifact_class=Dataset).output,
            validation_data=dsl.importer(artifact_uri=str(prepared["validation"]), artifact_class=Dataset).output,
            preprocessing=dsl.importer(artifact_uri=str(step_inputs["preprocessing"]), artifact_class=Artifact).output,
            training={
                "finetune": "full",
                "batch_size": 16,
                "epochs": 1,
                "warmup_ratio": 0.0,
                "early_stopping_patience": 1,
            },
            seed=0,
            checks={"cv_folds": cv_folds},
            dataset={"validation_fraction": 0.2},
            tracking_uri=step_inputs["tracking_uri"],
            mlflow_run_id=fresh_run_id,
        )
        return task.outputs["cross_validation"]

    off = json.loads(Path(only_cross_validate(cv_folds=0).output.path).read_text())
    assert off == {"folds": [], "summary": {"folds": 0}}
    result = json.loads(Path(only_cross_validate(cv_folds=2).output.path).read_text())
    assert [fold["fold"] for fold in result["folds"]] == [1, 2]
    rows = sum(len(pd.read_parquet(prepared[name])) for name in ("train", "validation"))
    assert sum(fold["test_rows"] for fold in result["folds"]) == rows
    assert 0.0 <= result["summary"]["accuracy"]["mean"] <= 1.0
