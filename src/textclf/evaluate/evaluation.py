"""Evaluation in one place: `evaluate_model` scores a classifier on a held-back test split next to two baselines,
with its calibration, behavioural tests and most confident mistakes, and writes nothing; the evaluate step records
the `Evaluation` (files, plots, MLflow) and renders the model card from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from textclf.data.balance import ClassBalance
from textclf.data.cleaning import CleaningConfig
from textclf.data.preprocess import LabelMap
from textclf.data.sources import LABEL, TEXT
from textclf.evaluate.behaviour import AUTOMATIC_SUITE, BUILT_IN_SUITES, check_spec
from textclf.train.cross_validation import MIN_FOLDS

if TYPE_CHECKING:
    from textclf.serve.classifier import TextClassifier


@dataclass
class Evaluation:
    """What evaluating a model on its test split found."""

    labels: list[str]
    test: dict[str, Any]
    """`textclf.metrics.classification_metrics` of the served model (calibrated, at its prediction length)."""
    baselines: dict[str, dict[str, Any]]
    """TF-IDF + logistic regression, and the base model before fine-tuning, on the same split."""
    calibration: dict[str, float]
    """The temperature, and ECE and mean confidence before and after it."""
    behaviour: dict[str, Any] | None
    """The behavioural tests' report, where a suite ran."""
    behaviour_note: str
    """Which suite ran, or why none did."""
    mistakes: pd.DataFrame
    """The most confident mistakes (`textclf.evaluate.report.confident_mistakes`)."""
    reliability: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Reliability-diagram bins per curve (before and after temperature scaling)."""
    train_class_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """What the evaluate step's JSON artifact holds, which the register step and the gate read."""
        return {
            "test": self.test,
            "baselines": self.baselines,
            "calibration": self.calibration,
            "behaviour": self.behaviour,
            "behaviour_note": self.behaviour_note,
        }


def evaluate_model(
    classifier: TextClassifier,
    raw_train: pd.DataFrame,
    test: pd.DataFrame,
    seed: int,
    behaviour_tests: str = AUTOMATIC_SUITE,
) -> Evaluation:
    """Score `classifier` on the prepared `test` split (texts already cleaned: cleaning is idempotent, so the
    serving path applies as is), next to a TF-IDF baseline trained on `raw_train` and the untrained base model."""
    from textclf.evaluate.baselines import tfidf_baseline, untrained_baseline
    from textclf.evaluate.behaviour import load_suite, run_suite
    from textclf.evaluate.calibration import apply_temperature, reliability_bins
    from textclf.evaluate.report import confident_mistakes
    from textclf.metrics import classification_metrics, expected_calibration_error

    metadata = classifier.metadata
    label_map = LabelMap(tuple(metadata.labels))
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
    if suite is not None:
        behaviour = run_suite(
            suite,
            behaviour_note,
            classifier.predict_proba,
            label_map.labels,
            test[TEXT].tolist(),
            seed,
        ).to_dict()
    return Evaluation(
        labels=list(label_map.labels),
        test=metrics,
        baselines=baselines,
        calibration=calibration,
        behaviour=behaviour,
        behaviour_note=behaviour_note,
        mistakes=confident_mistakes(test[TEXT].tolist(), test[LABEL].tolist(), predictions.labels, predictions.scores),
        reliability={
            "before scaling": reliability_bins(before_scaling, true_ids),
            f"after scaling (T = {metadata.temperature:.2f})": reliability_bins(predictions.probabilities, true_ids),
        },
        train_class_counts=ClassBalance.of(raw_train[LABEL], label_map.labels).counts,
    )


class QualityChecks(BaseModel):
    """What the model is checked by beyond its test-split metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cv_folds: int = Field(
        0,
        ge=0,
        description=f"k-fold cross-validation of the training recipe: K stratified folds (at least {MIN_FOLDS}) of "
        "the training and validation rows, reported in the model card; 0 = off",
    )
    behaviour_tests: str = Field(
        AUTOMATIC_SUITE,
        description="behavioural tests evaluate runs: auto (the built-in sentiment suite on positive/negative "
        f"labels), none, a built-in suite {list(BUILT_IN_SUITES)}, a YAML file's path or the YAML text",
    )

    @field_validator("cv_folds")
    @classmethod
    def _folds_or_off(cls, value: int) -> int:
        if value == 1:
            raise ValueError(f"cv_folds is the number of folds, at least {MIN_FOLDS}; 0 turns cross-validation off")
        return value

    @field_validator("behaviour_tests")
    @classmethod
    def _behaviour_suite_is_readable(cls, value: str) -> str:
        # A missing file or a malformed suite stops the run before training, not in the evaluate step.
        return check_spec(value)
