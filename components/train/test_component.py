import json
from pathlib import Path

import pandas as pd
import pytest
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model

pytestmark = pytest.mark.component


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "torchrun-two-processes"])
def test_train_runs_under_kfp_local(kfp_local: Path, step_inputs: dict, fresh_run_id: str, workers: int) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textclf.components.train.component import train
    from textclf.serve.classifier import TextClassifier

    prepared = step_inputs["prepared"]

    @dsl.pipeline
    def only_train() -> Model:
        task = train(
            train_data=dsl.importer(artifact_uri=str(prepared["train"]), artifact_class=Dataset).output,
            validation_data=dsl.importer(artifact_uri=str(prepared["validation"]), artifact_class=Dataset).output,
            preprocessing=dsl.importer(artifact_uri=str(step_inputs["preprocessing"]), artifact_class=Artifact).output,
            training={
                "finetune": "lora",
                "learning_rate": 1e-3,
                "batch_size": 8,
                "epochs": 2,
                "warmup_ratio": 0.1,
                "lora_r": 4,
                "lora_alpha": 8,
                "lora_dropout": 0.0,
                "early_stopping_patience": 1,
            },
            seed=0,
            data_fingerprint=step_inputs["fingerprint"],
            distributed={"workers": workers},
            namespace="textclf",
            tracking_uri=step_inputs["tracking_uri"],
            mlflow_run_id=fresh_run_id,
        )
        return task.outputs["model"]

    model_dir = Path(only_train().output.path)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    AutoTokenizer.from_pretrained(model_dir)
    assert model.config.label2id == {"negative": 0, "positive": 1}
    metadata = json.loads((model_dir / "textclf.json").read_text())
    assert metadata["finetune"] == "lora" and metadata["data_fingerprint"] == step_inputs["fingerprint"]
    assert metadata["training_params"]["learning_rate"] == 1e-3
    assert metadata["cleaning"]["strip_html"] is True
    # Trained on 32 tokens a text, it predicts with as many as the tiny BERT has positions.
    assert (metadata["max_length"], metadata["predict_max_length"]) == (32, 128)
    reference = pd.read_parquet(model_dir / "reference.parquet")
    assert list(reference.columns) == ["text", "label", "predicted_label", "score"]
    assert len(reference) == step_inputs["split_sizes"]["validation"]
    # The drift reference holds what serving answers: scores at the prediction length, with the temperature.
    served = TextClassifier.load(model_dir).predict(reference["text"].tolist())
    assert served.scores == pytest.approx(reference["score"].to_numpy(), abs=2e-3)
