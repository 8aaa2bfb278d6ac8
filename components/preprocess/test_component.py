import json
from pathlib import Path

import pandas as pd
import pytest
from kfp import dsl
from kfp.dsl import Artifact, Dataset

pytestmark = pytest.mark.component


def test_preprocess_runs_under_kfp_local(
    kfp_local: Path, step_inputs: dict, fresh_run_id: str, tiny_model_dir: Path
) -> None:
    from textclf.components.preprocess.component import preprocess

    raw = step_inputs["raw"]

    @dsl.pipeline
    def only_preprocess() -> Artifact:
        splits = {
            name: dsl.importer(artifact_uri=str(path), artifact_class=Dataset, reimport=False).output
            for name, path in raw.items()
        }
        task = preprocess(
            train_split=splits["train"],
            validation_split=splits["validation"],
            test_split=splits["test"],
            cleaning={"lowercase": True},
            encoder={
                "base_model": str(tiny_model_dir),
                "max_length": 24,
                "truncation": "head_tail",
                "predict_max_length": 256,
            },
            tracking_uri=step_inputs["tracking_uri"],
            mlflow_run_id=fresh_run_id,
        )
        return task.outputs["preprocessing"]

    preprocessing = json.loads(Path(only_preprocess().output.path).read_text())
    assert preprocessing["labels"] == ["negative", "positive"]
    assert preprocessing["cleaning"]["lowercase"] is True
    assert preprocessing["max_length"] == 24
    assert preprocessing["truncation"] == "head_tail"
    assert preprocessing["predict_max_length"] == 256
    test_data = pd.read_parquet(next(kfp_local.glob("*/preprocess/test_data")))
    assert test_data["length"].max() <= 24
    assert all(text == text.lower() for text in test_data["text"])
