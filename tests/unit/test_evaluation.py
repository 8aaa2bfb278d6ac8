"""Evaluation in one home: `evaluate_model` computes an `Evaluation` and writes nothing (no file, no MLflow call);
the model card is one template, whose sections render alone too."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.unit


def test_evaluate_model_computes_everything_and_writes_nothing(
    step_inputs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from textclf.evaluate.evaluation import evaluate_model
    from textclf.serve.classifier import TextClassifier

    def no_mlflow(*_: object, **__: object) -> None:
        raise AssertionError("evaluate_model called MLflow")

    for name in ("log_metrics", "log_metric", "log_dict", "log_text", "log_artifact", "set_tags", "start_run"):
        monkeypatch.setattr(mlflow, name, no_mlflow)
    monkeypatch.chdir(tmp_path)
    test = pd.read_parquet(step_inputs["prepared"]["test"])
    evaluation = evaluate_model(
        TextClassifier.load(step_inputs["model"]),
        pd.read_parquet(step_inputs["raw"]["train"]),
        test,
        seed=0,
        behaviour_tests="sentiment",
    )
    assert os.listdir(tmp_path) == []
    assert evaluation.test["samples"] == len(test)
    assert set(evaluation.baselines) == {"tfidf_logreg", "base_model_untrained"}
    assert evaluation.behaviour is not None and evaluation.behaviour["cases"] > 0
    assert len(evaluation.reliability) == 2 and evaluation.train_class_counts
    assert set(evaluation.to_dict()) == {"test", "baselines", "calibration", "behaviour", "behaviour_note"}


def test_the_model_card_is_one_template_with_every_section() -> None:
    from importlib import resources

    from textclf.evaluate.report import MODEL_CARD_TEMPLATE

    template = resources.files("textclf.evaluate").joinpath(MODEL_CARD_TEMPLATE).read_text()
    for section in (
        "## Data",
        "## Training configuration",
        "## Test metrics",
        "## Class balance",
        "## Calibration",
        "## Baselines (same test split)",
        "## Behavioural tests",
        "## Cross-validation",
        "## Serving backends",
        "## Intended use",
        "## Limits",
    ):
        assert section in template
