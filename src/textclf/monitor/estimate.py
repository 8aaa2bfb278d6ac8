"""Accuracy and macro F1 without labels, from calibrated probabilities (confidence-based performance estimation).

A model whose probabilities are calibrated is right on a text as often as its top probability says, and a text's
probabilities are the chance of each true class. So a window's expected accuracy is the mean top probability, and
its expected confusion matrix puts each text's probabilities in the column of the class it was given. The
interval comes from the same model of the truth: true labels are drawn from every text's probabilities many times
and the accuracy and macro F1 of each draw taken; the interval holds the middle `level` of them, widened on both
sides by the model's own calibration error (what calibration got wrong on its validation split).

It holds while calibration holds, which covariate shift may erode and which label shift and concept shift break:
a model confidently wrong on a changed meaning looks as good as ever. The monitor shows the estimate next to live
accuracy once feedback labels exist, and the decision's accuracy drop uses the labels (docs/monitoring.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ESTIMATE_LEVEL = 0.95
"""The interval's share of the simulated accuracies."""
ESTIMATE_DRAWS = 1000
"""Simulated labellings of a window: the interval's percentiles move by well under 0.005 between seeds at this
many."""
DRAW_CHUNK_ELEMENTS = 8_000_000
"""Comparisons held in memory at once (draws x texts x classes): a 100,000-text window uses the same memory as
4,000."""


@dataclass(frozen=True)
class PerformanceEstimate:
    """What the probabilities of one window say about its accuracy, without labels."""

    texts: int
    accuracy: float
    accuracy_interval: tuple[float, float]
    macro_f1: float
    macro_f1_interval: tuple[float, float]
    per_class: dict[str, dict[str, float]]
    """Per class: its share of the predictions, its expected share of the truth, and estimated precision, recall
    and F1."""
    confusion: list[list[float]]
    """Expected counts: rows are true classes, columns predicted classes, in the model's label order."""
    level: float
    calibration_error: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "accuracy": self.accuracy,
            "accuracy_interval": list(self.accuracy_interval),
            "macro_f1": self.macro_f1,
            "macro_f1_interval": list(self.macro_f1_interval),
            "per_class": self.per_class,
            "confusion": self.confusion,
            "level": self.level,
            "calibration_error": self.calibration_error,
        }


def _f1(confusion: np.ndarray) -> np.ndarray:
    """Per-class F1 of confusion matrices (..., true, predicted); 0 where a class is neither true nor predicted,
    as scikit-learn's `zero_division=0` gives."""
    hits = np.diagonal(confusion, axis1=-2, axis2=-1)
    denominator = confusion.sum(axis=-1) + confusion.sum(axis=-2)
    return np.divide(2 * hits, denominator, out=np.zeros_like(hits, dtype=float), where=denominator > 0)


def _simulated(
    probabilities: np.ndarray, predicted: np.ndarray, draws: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro F1 of `draws` labellings whose every true label is drawn from its text's probabilities."""
    texts, classes = probabilities.shape
    cumulative = probabilities.cumsum(axis=1)
    cumulative[:, -1] = 1.0  # rounding must not leave a draw past the last class
    rng = np.random.default_rng(seed)
    accuracies, macro_f1s = [], []
    per_chunk = max(1, DRAW_CHUNK_ELEMENTS // (texts * classes))
    for start in range(0, draws, per_chunk):
        count = min(per_chunk, draws - start)
        truth = (rng.random((count, texts, 1)) > cumulative).sum(axis=2)
        accuracies.append((truth == predicted).mean(axis=1))
        cells = (np.arange(count)[:, None] * classes + truth) * classes + predicted
        confusion = np.bincount(cells.ravel(), minlength=count * classes * classes).reshape(count, classes, classes)
        macro_f1s.append(_f1(confusion).mean(axis=1))
    return np.concatenate(accuracies), np.concatenate(macro_f1s)


def estimate_performance(
    probabilities: np.ndarray,
    labels: Sequence[str],
    calibration_error: float = 0.0,
    level: float = ESTIMATE_LEVEL,
    draws: int = ESTIMATE_DRAWS,
    seed: int = 0,
) -> PerformanceEstimate:
    """The estimated accuracy and macro F1 of the predictions whose calibrated class probabilities (texts x
    classes, in `labels` order) are given; the predicted class of each text is its most probable one, as served.
    `calibration_error` (the model's validation ECE after calibration) widens both intervals."""
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(labels):
        raise ValueError(f"probabilities must be texts x {len(labels)} classes, not {probabilities.shape}")
    if len(probabilities) == 0:
        raise ValueError("no predictions to estimate from")
    if not np.isfinite(probabilities).all() or (probabilities < 0).any():
        raise ValueError("probabilities must be finite and non-negative")
    totals = probabilities.sum(axis=1, keepdims=True)
    if (totals <= 0).any():
        raise ValueError("each text's probabilities must sum to more than 0")
    probabilities = probabilities / totals
    texts, classes = probabilities.shape
    predicted = probabilities.argmax(axis=1)
    given = np.zeros((texts, classes))
    given[np.arange(texts), predicted] = 1.0
    confusion = probabilities.T @ given
    accuracies, macro_f1s = _simulated(probabilities, predicted, draws, seed)
    tail = (1 - level) / 2 * 100

    def interval(values: np.ndarray) -> tuple[float, float]:
        low, high = np.percentile(values, [tail, 100 - tail])
        return float(max(0.0, low - calibration_error)), float(min(1.0, high + calibration_error))

    hits = np.diagonal(confusion)
    predicted_counts, true_counts = confusion.sum(axis=0), confusion.sum(axis=1)
    f1 = _f1(confusion)
    per_class = {
        label: {
            "predicted_share": float(predicted_counts[i] / texts),
            "estimated_true_share": float(true_counts[i] / texts),
            "precision": float(hits[i] / predicted_counts[i]) if predicted_counts[i] else 0.0,
            "recall": float(hits[i] / true_counts[i]) if true_counts[i] else 0.0,
            "f1": float(f1[i]),
        }
        for i, label in enumerate(labels)
    }
    return PerformanceEstimate(
        texts=texts,
        accuracy=float(probabilities.max(axis=1).mean()),
        accuracy_interval=interval(accuracies),
        # The mean over simulated labellings: F1 is not linear in the counts, so F1 of the expected confusion
        # matrix would sit above it on small windows.
        macro_f1=float(macro_f1s.mean()),
        macro_f1_interval=interval(macro_f1s),
        per_class=per_class,
        confusion=confusion.round(3).tolist(),
        level=level,
        calibration_error=calibration_error,
    )


def confidence_threshold(reference_scores: np.ndarray, reference_correct: np.ndarray) -> float:
    """The score above which the reference's share of texts equals its accuracy (average thresholded confidence,
    Garg et al., ICLR 2022): a text scored above it counts as right."""
    scores = np.sort(np.asarray(reference_scores, dtype=float))
    accuracy = float(np.mean(reference_correct))
    below = min(len(scores) - 1, max(0, round((1.0 - accuracy) * len(scores))))
    return float(scores[below - 1]) if below > 0 else float(scores[0]) - 1e-12


def thresholded_accuracy(window_scores: np.ndarray, threshold: float) -> float:
    """The window's estimated accuracy by average thresholded confidence: its share of texts scored above the
    reference's `confidence_threshold`."""
    return float(np.mean(np.asarray(window_scores, dtype=float) > threshold))
