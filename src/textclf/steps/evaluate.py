"""The evaluate step: the test split next to two baselines; the report artifacts and the model card."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textclf.data.balance import ClassBalance
from textclf.data.cleaning import CleaningConfig
from textclf.data.preprocess import LabelMap
from textclf.data.sources import LABEL, TEXT
from textclf.evaluate.behaviour import AUTOMATIC_SUITE

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
    """Score the model on the held-back test split next to two baselines, run the behavioural tests
    `behaviour_tests` names; write the report artifacts (the model card shows `cross_validation` too)."""
    import mlflow

    from textclf.evaluate.baselines import tfidf_baseline, untrained_baseline
    from textclf.evaluate.behaviour import load_suite, run_suite
    from textclf.evaluate.calibration import apply_temperature, plot_reliability, reliability_bins
    from textclf.evaluate.report import (
        ModelCardInputs,
        confident_mistakes,
        error_analysis_html,
        model_card,
        plot_confusion_matrix,
    )
    from textclf.metrics import classification_metrics, expected_calibration_error
    from textclf.registry.tracking import log_flat_metrics
    from textclf.serve.classifier import TextClassifier
    from textclf.train.cross_validation import cross_validation_section

    classifier = TextClassifier.load(model_dir)
    metadata = classifier.metadata
    label_map = LabelMap(tuple(metadata.labels))
    test = pd.read_parquet(test_path)
    raw_train = pd.read_parquet(raw_train_path)
    # Test texts were cleaned by preprocessing; cleaning is idempotent, so the serving path applies as is.
    predictions = classifier.predict(test[TEXT].tolist())
    true_ids = np.asarray(label_map.encode(test[LABEL]))
    metrics = classification_metrics(true_ids, predictions.probabilities, label_map.labels)
    before_scaling = apply_temperature(predictions.probabilities, 1 / metadata.temperature)
    calibration = {
        "temperature": metadata.temperature,
        "ece_before": expected_calibration_error(before_scaling, true_ids),
        "ece_after": metrics["ece"],
        "mean_confidence_before": float(before_scaling.max(axis=1).mean()),
        "mean_confidence_after": metrics["mean_confidence"],
    }
    cleaning = CleaningConfig.from_dict(metadata.cleaning)
    baselines = {
        "tfidf_logreg": tfidf_baseline(raw_train, test, label_map, cleaning, seed),
        "base_model_untrained": untrained_baseline(
            metadata.base_model,
            test,
            label_map,
            cleaning,
            metadata.max_length,
            metadata.prediction_length,
            seed,
            metadata.truncation,
        ),
    }
    suite, behaviour_note = load_suite(behaviour_tests, label_map.labels)
    behaviour = None
    if suite is None:
        log.info("behavioural tests: %s", behaviour_note)
    else:
        behaviour = run_suite(
            suite,
            behaviour_note,
            lambda texts: classifier.predict(texts).probabilities,
            label_map.labels,
            test[TEXT].tolist(),
            seed,
        ).to_dict()
    mistakes = confident_mistakes(test[TEXT].tolist(), test[LABEL].tolist(), predictions.labels, predictions.scores)
    plot_confusion_matrix(metrics["confusion_matrix"], metrics["labels"], paths.confusion_png)
    with tempfile.TemporaryDirectory() as scratch:
        reliability_png = Path(scratch) / "reliability.png"
        plot_reliability(
            {
                "before scaling": reliability_bins(before_scaling, true_ids),
                f"after scaling (T = {metadata.temperature:.2f})": reliability_bins(
                    predictions.probabilities, true_ids
                ),
            },
            reliability_png,
        )
        mlflow.log_artifact(str(reliability_png), "evaluation")
        paths.error_analysis.write_text(
            error_analysis_html(mistakes, paths.confusion_png.read_bytes(), reliability_png.read_bytes())
        )
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
            metrics=metrics,
            baselines=baselines,
            labels=list(label_map.labels),
            provenance=_provenance_of_active_run(),
            train_class_counts=ClassBalance.of(raw_train[LABEL], label_map.labels).counts,
            calibration=calibration,
            behaviour=behaviour,
            behaviour_note=behaviour_note,
            cross_validation_lines=cross_validation_section(cross_validation),
            backends=metadata.backends,
        )
    )
    paths.model_card.write_text(card)
    evaluation = {
        "test": metrics,
        "baselines": baselines,
        "calibration": calibration,
        "behaviour": behaviour,
        "behaviour_note": behaviour_note,
    }
    paths.evaluation_json.write_text(json.dumps(evaluation, indent=2))
    log_flat_metrics({k: v for k, v in metrics.items() if k != "confusion_matrix"}, "test")
    for name, baseline in baselines.items():
        mlflow.log_metrics(
            {
                f"baseline_{name}_accuracy": baseline["accuracy"],
                f"baseline_{name}_macro_f1": baseline["macro_f1"],
            }
        )
    mlflow.log_dict(evaluation, "evaluation/evaluation.json")
    mlflow.log_text(card, "evaluation/model_card.md")
    mlflow.log_artifact(str(paths.confusion_png), "evaluation")
    mlflow.log_metrics({f"test_calibration_{name}": value for name, value in calibration.items()})
    mlflow.log_text(mistakes.to_csv(index=False), "evaluation/confident_mistakes.csv")
    if behaviour is not None:
        mlflow.log_metrics(behaviour_metrics(behaviour))
        mlflow.log_dict(behaviour, "evaluation/behaviour.json")
    return evaluation


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


def _provenance_of_active_run() -> list[str]:
    """The model card's provenance lines, from the tags and parameters ingest gave the pipeline's run."""
    import mlflow

    from textclf.evaluate.report import training_provenance
    from textclf.registry.gate import TRAINED_ON_FEEDBACK_TAG
    from textclf.steps.ingest import TRIGGER_TAG

    active = mlflow.active_run()
    if active is None:
        return []
    run = mlflow.get_run(active.info.run_id)
    return training_provenance(
        run.data.tags.get(TRIGGER_TAG, ""),
        run.data.params.get("extra_train_data", ""),
        run.data.tags.get(TRAINED_ON_FEEDBACK_TAG) == "true",
    )
