"""Temperature scaling: fitted on validation rows, it brings an over- or under-confident model's scores in line
with its accuracy without changing a prediction; training records it, serving applies it, the card shows it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from textclf.evaluate.calibration import (
    TEMPERATURE_RANGE,
    apply_temperature,
    fit_temperature,
    negative_log_likelihood,
    plot_reliability,
    reliability_bins,
)
from textclf.metrics import expected_calibration_error

pytestmark = pytest.mark.unit


def calibrated_sample(rows: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from the softmax of those logits: calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(rows, classes))
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in probabilities])
    return logits, labels


def softmax(logits: np.ndarray) -> np.ndarray:
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(("distortion", "expected"), [(3.0, 3.0), (0.4, 0.4)])
def test_scaling_recovers_the_distortion_and_ece_falls(distortion: float, expected: float) -> None:
    """Logits multiplied by 3 (over-confident) or 0.4 (under-confident): fitted on one half, T undoes it and the
    other half's ECE and log-loss fall, with every predicted class unchanged."""
    logits, labels = calibrated_sample(6000, 4, seed=0)
    distorted = softmax(logits * distortion)
    fit_rows, held_out = slice(0, 3000), slice(3000, None)
    temperature = fit_temperature(distorted[fit_rows], labels[fit_rows])
    assert temperature == pytest.approx(expected, rel=0.15)
    scaled = apply_temperature(distorted[held_out], temperature)
    before = expected_calibration_error(distorted[held_out], labels[held_out])
    after = expected_calibration_error(scaled, labels[held_out])
    assert after < before / 2
    loss = negative_log_likelihood
    assert loss(scaled, labels[held_out]) < loss(distorted[held_out], labels[held_out])
    assert (scaled.argmax(axis=1) == distorted[held_out].argmax(axis=1)).all()


def test_a_calibrated_model_keeps_a_temperature_near_one() -> None:
    logits, labels = calibrated_sample(4000, 3, seed=1)
    assert fit_temperature(softmax(logits), labels) == pytest.approx(1.0, abs=0.1)


def test_the_temperature_stays_in_range_and_no_rows_means_no_change() -> None:
    # Perfectly separated rows would sharpen without limit: the range stops it.
    probabilities = np.array([[0.6, 0.4], [0.3, 0.7]] * 20)
    labels = np.array([0, 1] * 20)
    assert fit_temperature(probabilities, labels) == pytest.approx(TEMPERATURE_RANGE[0], rel=0.01)
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0, dtype=int)) == 1.0


def test_the_inverse_temperature_undoes_scaling() -> None:
    logits, _ = calibrated_sample(50, 5, seed=2)
    original = softmax(logits)
    assert apply_temperature(apply_temperature(original, 2.5), 1 / 2.5) == pytest.approx(original, abs=1e-6)
    assert apply_temperature(original, 2.5) == pytest.approx(softmax(logits / 2.5), abs=1e-6)


def test_reliability_bins_and_plot(tmp_path: Path) -> None:
    probabilities = np.array([[0.95, 0.05], [0.08, 0.92], [0.55, 0.45], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    bins = reliability_bins(probabilities, labels)
    assert sum(b["rows"] for b in bins) == 4
    top = bins[-1]
    assert top["rows"] == 2 and top["accuracy"] == 1.0 and top["confidence"] == pytest.approx(0.935)
    plot_reliability({"before": bins, "after": bins}, tmp_path / "reliability.png")
    assert (tmp_path / "reliability.png").read_bytes().startswith(b"\x89PNG")


def test_training_records_the_temperature_and_the_card_shows_calibration(step_inputs: dict) -> None:
    metadata = json.loads((step_inputs["model"] / "textclf.json").read_text())
    temperature = metadata["temperature"]
    assert TEMPERATURE_RANGE[0] <= temperature <= TEMPERATURE_RANGE[1]
    assert metadata["metrics"]["temperature"] == temperature
    assert "validation_ece_calibrated" in metadata["metrics"]
    evaluation = json.loads(step_inputs["evaluation"].read_text())
    assert evaluation["calibration"]["temperature"] == temperature
    card = (step_inputs["root"] / "card.md").read_text()
    assert "## Calibration" in card and f"T = {temperature:.3f}" in card
    assert "| base model before fine-tuning |" in card
    assert "Reliability" in (step_inputs["root"] / "errors.html").read_text()


def test_serving_divides_the_logits_by_the_recorded_temperature(step_inputs: dict, tmp_path: Path) -> None:
    from textclf.serve.classifier import TextClassifier

    texts = ["a fine film", "a dull and tiring film", "it was ok"]
    plain, scaled = tmp_path / "plain", tmp_path / "scaled"
    for directory, temperature in ((plain, 1.0), (scaled, 0.25)):
        shutil.copytree(step_inputs["model"], directory)
        metadata = json.loads((directory / "textclf.json").read_text())
        (directory / "textclf.json").write_text(json.dumps({**metadata, "temperature": temperature}))
    at_one = TextClassifier.load(plain).predict(texts).probabilities
    at_quarter = TextClassifier.load(scaled).predict(texts).probabilities
    assert at_quarter == pytest.approx(apply_temperature(at_one, 0.25), abs=2e-3)
