"""The label-free performance estimate (`textclf.monitor.estimate`) on synthetic calibrated predictions: texts whose
true labels are drawn from the very probabilities the estimate reads, so the truth it should recover is known."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import f1_score

from textclf.monitor.estimate import estimate_performance

pytestmark = pytest.mark.unit

LABELS = ("World", "Sports", "Business", "Sci/Tech")


def calibrated(texts: int, classes: int, sharpness: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and true labels drawn from them: a perfectly calibrated model's predictions."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(texts, classes)) * sharpness
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    truth = (rng.random((texts, 1)) > probabilities.cumsum(axis=1)).sum(axis=1).clip(max=classes - 1)
    return probabilities, truth


@pytest.mark.parametrize("sharpness", [1.0, 3.0, 8.0])
def test_recovers_the_accuracy_and_macro_f1_of_calibrated_predictions(sharpness: float) -> None:
    covered, errors = 0, []
    for seed in range(20):
        probabilities, truth = calibrated(1000, len(LABELS), sharpness, seed)
        estimate = estimate_performance(probabilities, LABELS, seed=seed)
        accuracy = float((probabilities.argmax(axis=1) == truth).mean())
        macro_f1 = f1_score(truth, probabilities.argmax(axis=1), average="macro", labels=range(len(LABELS)))
        errors.append(abs(estimate.accuracy - accuracy))
        low, high = estimate.accuracy_interval
        covered += low <= accuracy <= high
        assert abs(estimate.macro_f1 - macro_f1) < 0.06
    assert np.mean(errors) < 0.02
    assert covered >= 16  # a 95 % interval misses about one window in twenty


def test_the_expected_confusion_matrix_adds_up_and_names_each_class() -> None:
    probabilities, _ = calibrated(400, len(LABELS), 2.0, 0)
    estimate = estimate_performance(probabilities, LABELS)
    confusion = np.array(estimate.confusion)
    assert confusion.sum() == pytest.approx(400, abs=0.01)
    assert np.trace(confusion) / 400 == pytest.approx(estimate.accuracy, abs=1e-4)
    assert set(estimate.per_class) == set(LABELS)
    shares = [cls["predicted_share"] for cls in estimate.per_class.values()]
    assert sum(shares) == pytest.approx(1.0)
    assert estimate.to_dict()["accuracy_interval"] == list(estimate.accuracy_interval)


def test_calibration_error_widens_the_interval_within_zero_and_one() -> None:
    certain = np.tile([0.999, 0.001], (300, 1))
    narrow = estimate_performance(certain, ("a", "b"))
    wide = estimate_performance(certain, ("a", "b"), calibration_error=0.03)
    assert wide.accuracy_interval[0] == pytest.approx(narrow.accuracy_interval[0] - 0.03)
    assert wide.accuracy_interval[1] == 1.0


def test_one_text_and_a_hundred_thousand_texts_of_twenty_classes_are_estimated_in_bounded_time() -> None:
    one = estimate_performance(np.array([[0.2, 0.8]]), ("a", "b"))
    assert one.accuracy == pytest.approx(0.8)
    assert one.accuracy_interval == (0.0, 1.0)
    probabilities, _ = calibrated(100_000, 20, 3.0, 1)
    started = time.perf_counter()
    estimate = estimate_performance(probabilities, tuple(f"class {i}" for i in range(20)))
    assert time.perf_counter() - started < 60
    assert estimate.accuracy_interval[1] - estimate.accuracy_interval[0] < 0.01


@pytest.mark.parametrize(
    ("probabilities", "problem"),
    [
        (np.zeros((0, 2)), "no predictions"),
        (np.ones((3, 3)), "texts x 2 classes"),
        (np.array([[np.nan, 1.0]]), "finite"),
        (np.array([[-0.5, 1.5]]), "non-negative"),
        (np.zeros((2, 2)), "more than 0"),
    ],
)
def test_refuses_probabilities_it_cannot_read(probabilities: np.ndarray, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        estimate_performance(probabilities, ("a", "b"))


def test_average_thresholded_confidence_counts_the_share_above_the_references_threshold() -> None:
    from textclf.monitor.estimate import confidence_threshold, thresholded_accuracy

    rng = np.random.default_rng(0)
    scores = rng.uniform(0.5, 1.0, 1000)
    correct = rng.random(1000) < scores
    threshold = confidence_threshold(scores, correct)
    assert thresholded_accuracy(scores, threshold) == pytest.approx(correct.mean())
    assert thresholded_accuracy(np.array([0.99, 0.2]), threshold) == 0.5
