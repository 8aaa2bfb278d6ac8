import numpy as np
import pytest

from textclf.metrics import classification_metrics, expected_calibration_error

pytestmark = pytest.mark.unit


def test_perfectly_calibrated_predictions_have_zero_ece() -> None:
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probabilities, np.array([0, 1])) == 0.0


def test_overconfident_mistakes_give_their_gap() -> None:
    # Two predictions at 0.9 confidence, one right and one wrong: |0.5 - 0.9| = 0.4.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1]])
    assert expected_calibration_error(probabilities, np.array([0, 1])) == pytest.approx(0.4)


def test_metrics_match_a_hand_count() -> None:
    probabilities = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
    metrics = classification_metrics(np.array([0, 0, 1, 1]), probabilities, ("a", "b"))
    assert metrics["accuracy"] == 0.5
    assert metrics["confusion_matrix"] == [[1, 1], [1, 1]]
    assert metrics["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert metrics["macro_f1"] == 0.5
    assert metrics["labels"] == ["a", "b"]


def test_a_class_never_predicted_gets_zero_f1_not_an_error() -> None:
    probabilities = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0]])
    metrics = classification_metrics(np.array([0, 2]), probabilities, ("a", "b", "c"))
    assert metrics["per_class"]["c"]["f1"] == 0.0
    assert metrics["per_class"]["b"]["support"] == 0


def test_label_quality_from_feedback_labels() -> None:
    from textclf.metrics import label_quality

    quality = label_quality(["pos", "pos", "neg", "neg"], ["pos", "neg", "neg", "neg"])
    assert quality["labelled"] == 4 and quality["accuracy"] == 0.75
    assert quality["per_class_f1"] == {"neg": pytest.approx(0.8), "pos": pytest.approx(2 / 3)}
    assert label_quality([], [])["accuracy"] is None
