"""Calibration: temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks") fitted on
the validation split, so a served score of 0.8 means right about 80 % of the time; and the reliability
diagram that shows it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The temperatures searched. Below 1 sharpens an under-confident model, above 1 softens an over-confident one;
# the bounds keep a tiny or perfectly separated validation split from driving it to an extreme.
TEMPERATURE_RANGE = (0.1, 10.0)
RELIABILITY_BINS = 10


def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probabilities, 1e-12, 1.0))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from the probabilities softmax(logits): log p differs from the logits by a
    per-row constant, which softmax ignores. `1 / T` undoes `T`."""
    scaled = _log_probabilities(probabilities) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exponentials = np.exp(scaled)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, true_ids: np.ndarray) -> float:
    rows = np.arange(len(true_ids))
    return float(-_log_probabilities(probabilities)[rows, np.asarray(true_ids)].mean())


def fit_temperature(probabilities: np.ndarray, true_ids: np.ndarray) -> float:
    """The temperature in `TEMPERATURE_RANGE` that minimises the negative log-likelihood of the held-out rows;
    1.0 (no change) when there are none. One parameter: the predicted class never changes, only the scores."""
    from scipy.optimize import minimize_scalar

    if len(true_ids) == 0:
        return 1.0
    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(apply_temperature(probabilities, float(np.exp(log_t))), true_ids),
        bounds=(low, high),
        method="bounded",
    )
    return float(np.exp(result.x))


def reliability_bins(probabilities: np.ndarray, true_ids: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict]:
    """Per equal-width confidence bin: its range, rows, mean confidence and accuracy (empty bins left out)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(true_ids)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return [
        {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "rows": int((index == b).sum()),
            "confidence": float(confidence[index == b].mean()),
            "accuracy": float(correct[index == b].mean()),
        }
        for b in range(bins)
        if (index == b).any()
    ]


def plot_reliability(curves: dict[str, list[dict]], path: Path) -> None:
    """Accuracy against confidence per bin for each named curve (before and after scaling), with the diagonal
    a calibrated model lies on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="calibrated")
    for name, bins in curves.items():
        axes.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", label=name)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence (top-class probability)")
    axes.set_ylabel("accuracy")
    axes.set_title("Reliability (test split)")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120, format="png")
    plt.close(figure)
