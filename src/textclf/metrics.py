"""Classification metrics as pure functions of labels, predictions and probabilities: what training selects
epochs and trials by, evaluation reports and the monitor's live quality computes. A leaf: it imports no other
textclf module, so every stage may use it."""

from __future__ import annotations

from typing import Any

import numpy as np


def expected_calibration_error(probabilities: np.ndarray, true_ids: np.ndarray, bins: int = 15) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins, weighted by bin size."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == true_ids
    edges = np.linspace(0.0, 1.0, bins + 1)
    bin_index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for index in range(bins):
        members = bin_index == index
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def classification_metrics(true_ids: np.ndarray, probabilities: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, precision, recall, per-class report, confusion matrix and ECE."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    true_ids = np.asarray(true_ids)
    predicted = probabilities.argmax(axis=1)
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(true_ids, predicted, labels=ids, zero_division=0)
    macro = precision_recall_fscore_support(true_ids, predicted, labels=ids, average="macro", zero_division=0)
    weighted = precision_recall_fscore_support(true_ids, predicted, labels=ids, average="weighted", zero_division=0)
    return {
        "accuracy": float(accuracy_score(true_ids, predicted)),
        "macro_f1": float(macro[2]),
        "weighted_f1": float(weighted[2]),
        "macro_precision": float(macro[0]),
        "macro_recall": float(macro[1]),
        "ece": expected_calibration_error(probabilities, true_ids),
        "mean_confidence": float(probabilities.max(axis=1).mean()),
        "samples": len(true_ids),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(true_ids, predicted, labels=ids).tolist(),
        "labels": list(labels),
    }


def label_quality(true_labels: list[str], predicted_labels: list[str]) -> dict[str, Any]:
    """Accuracy and per-class F1 from label names alone: what feedback on logged predictions gives."""
    from sklearn.metrics import f1_score

    classes = sorted(set(true_labels) | set(predicted_labels))
    if not true_labels:
        return {"labelled": 0, "accuracy": None, "per_class_f1": {}}
    f1 = f1_score(true_labels, predicted_labels, labels=classes, average=None, zero_division=0)
    correct = sum(t == p for t, p in zip(true_labels, predicted_labels, strict=True))
    return {
        "labelled": len(true_labels),
        "accuracy": correct / len(true_labels),
        "per_class_f1": {label: float(score) for label, score in zip(classes, f1, strict=True)},
    }
