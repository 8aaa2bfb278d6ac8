"""The evaluate step: `evaluate_model` on the test split, the model card, and the record of both (files, MLflow)."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from textclf.evaluate.behaviour import AUTOMATIC_SUITE
from textclf.evaluate.evaluation import Evaluation
from textclf.evaluate.report import Provenance

log = logging.getLogger(__name__)


@dataclass
class EvaluationPaths:
    evaluation_json: Path
    model_card: Path
    error_analysis: Path
    confusion_png: Path


def run_evaluate(
    model_dir: Path,
    raw_train_path: Path,
    test_path: Path,
    data_spec: str,
    data_fingerprint: str,
    model_name: str,
    split_sizes: dict[str, int],
    seed: int,
    paths: EvaluationPaths,
    behaviour_tests: str = AUTOMATIC_SUITE,
    cross_validation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate the model directory (`evaluate_model`), render its model card (`cross_validation` included) and
    record both (`record_evaluation`); returns the evaluation's JSON."""
    from textclf.evaluate.evaluation import evaluate_model
    from textclf.evaluate.report import ModelCardInputs, model_card
    from textclf.serve.classifier import TextClassifier

    classifier = TextClassifier.load(model_dir)
    metadata = classifier.metadata
    evaluation = evaluate_model(
        classifier, pd.read_parquet(raw_train_path), pd.read_parquet(test_path), seed, behaviour_tests
    )
    if evaluation.behaviour is None:
        log.info("behavioural tests: %s", evaluation.behaviour_note)
    card = model_card(
        ModelCardInputs(
            model_name=model_name,
            data_spec=data_spec,
            data_fingerprint=data_fingerprint,
            split_sizes=split_sizes,
            base_model=metadata.base_model,
            training_params={
                **metadata.training_params,
                "max_length": metadata.max_length,
                "truncation": metadata.truncation,
                "predict_max_length": metadata.prediction_length,
            },
            metrics=evaluation.test,
            baselines=evaluation.baselines,
            labels=evaluation.labels,
            provenance=_provenance_of_active_run(),
            train_class_counts=evaluation.train_class_counts,
            calibration=evaluation.calibration,
            behaviour=evaluation.behaviour,
            behaviour_note=evaluation.behaviour_note,
            cross_validation=cross_validation,
            backends=metadata.backends,
        )
    )
    record_evaluation(evaluation, card, paths)
    return evaluation.to_dict()


def record_evaluation(evaluation: Evaluation, card: str, paths: EvaluationPaths) -> None:
    """Write the evaluation's files and plots and log them, with its metrics, to the active MLflow run."""
    import mlflow

    from textclf.evaluate.calibration import plot_reliability
    from textclf.evaluate.report import error_analysis_html, plot_confusion_matrix
    from textclf.registry.tracking import log_flat_metrics

    metrics = evaluation.test
    plot_confusion_matrix(metrics["confusion_matrix"], metrics["labels"], paths.confusion_png)
    with tempfile.TemporaryDirectory() as scratch:
        reliability_png = Path(scratch) / "reliability.png"
        plot_reliability(evaluation.reliability, reliability_png)
        mlflow.log_artifact(str(reliability_png), "evaluation")
        paths.error_analysis.write_text(
            error_analysis_html(evaluation.mistakes, paths.confusion_png.read_bytes(), reliability_png.read_bytes())
        )
    paths.model_card.write_text(card)
    summary = evaluation.to_dict()
    paths.evaluation_json.write_text(json.dumps(summary, indent=2))
    log_flat_metrics({k: v for k, v in metrics.items() if k != "confusion_matrix"}, "test")
    for name, baseline in evaluation.baselines.items():
        mlflow.log_metrics(
            {
                f"baseline_{name}_accuracy": baseline["accuracy"],
                f"baseline_{name}_macro_f1": baseline["macro_f1"],
            }
        )
    mlflow.log_dict(summary, "evaluation/evaluation.json")
    mlflow.log_text(card, "evaluation/model_card.md")
    mlflow.log_artifact(str(paths.confusion_png), "evaluation")
    mlflow.log_metrics({f"test_calibration_{name}": value for name, value in evaluation.calibration.items()})
    mlflow.log_text(evaluation.mistakes.to_csv(index=False), "evaluation/confident_mistakes.csv")
    if evaluation.behaviour is not None:
        mlflow.log_metrics(behaviour_metrics(evaluation.behaviour))
        mlflow.log_dict(evaluation.behaviour, "evaluation/behaviour.json")


def behaviour_metrics(behaviour: dict[str, Any]) -> dict[str, float]:
    """The behavioural tests' failure rates as metric names MLflow and the KFP UI accept."""
    metrics = {
        "behaviour_failure_rate": behaviour["failure_rate"],
        "behaviour_max_failure_rate": behaviour["max_failure_rate"],
    }
    for test in behaviour["tests"]:
        slug = "_".join("".join(c if c.isalnum() else " " for c in test["name"].lower()).split())
        metrics[f"behaviour_{slug}_failure_rate"] = test["failure_rate"]
    return metrics


def _provenance_of_active_run() -> Provenance | None:
    """How the pipeline's run came about, from the tags and parameters ingest gave it."""
    import mlflow

    from textclf.registry.gate import TRAINED_ON_FEEDBACK_TAG
    from textclf.steps.ingest import TRIGGER_TAG

    active = mlflow.active_run()
    if active is None:
        return None
    run = mlflow.get_run(active.info.run_id)
    return Provenance(
        run.data.tags.get(TRIGGER_TAG, ""),
        run.data.params.get("extra_train_data", ""),
        run.data.tags.get(TRAINED_ON_FEEDBACK_TAG) == "true",
    )
