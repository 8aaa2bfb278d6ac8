"""Inference backends: training exports the model to ONNX (fp32 and int8) and records each backend's validation
accuracy; the ONNX graph computes what PyTorch does at any batch size and length; `auto` serves only a backend
whose accuracy holds; a directory without the exports gets them at load, elsewhere than in itself."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.hostile import HOSTILE_SHAPES
from textclf.names import MODEL_METADATA_FILE, ONNX_INT8_MODEL_FILE, ONNX_MODEL_FILE
from textclf.serve.backends import (
    AUTO_ACCURACY_TOLERANCE,
    BACKENDS,
    ONNX_FILES,
    TIMING_BATCH_SIZES,
    TIMING_REPEATS,
    TIMING_ROUNDS,
    eligible_backends,
    time_backends,
)

pytestmark = pytest.mark.unit

# Lengths from empty to far past the fixture model's 32 tokens, so batches differ in size and padding.
TEXTS = [
    "",
    "ok",
    "A lovely, moving film.",
    "Dreadful. " * 3,
    " ".join(f"word{index}" for index in range(200)),
    "naïve café — 中文 😀 " * 4,
] * 12


def without_exports(model_dir: Path, destination: Path) -> Path:
    """A copy of a model directory as textclf wrote it before it exported ONNX: no files, no record."""
    shutil.copytree(model_dir, destination)
    for file in ONNX_FILES.values():
        (destination / file).unlink()
    metadata = json.loads((destination / MODEL_METADATA_FILE).read_text())
    (destination / MODEL_METADATA_FILE).write_text(json.dumps({**metadata, "backends": {}}))
    return destination


def test_training_exports_onnx_and_records_every_backends_validation_accuracy(step_inputs: dict) -> None:
    from mlflow.tracking import MlflowClient

    from textclf.registry.model_dir import ModelDirectory

    model_dir = step_inputs["model"]
    assert (model_dir / ONNX_MODEL_FILE).stat().st_size > 0
    assert (model_dir / ONNX_INT8_MODEL_FILE).stat().st_size < (model_dir / ONNX_MODEL_FILE).stat().st_size
    recorded = ModelDirectory(model_dir).metadata().backends
    assert set(recorded) == set(BACKENDS)
    for record in recorded.values():
        assert 0 <= record["validation_accuracy"] <= 1
        assert record["samples"] == len(ModelDirectory(model_dir).reference())
    assert recorded["torch"]["agreement_with_torch"] == 1.0
    logged = MlflowClient(step_inputs["tracking_uri"]).get_run(step_inputs["run_id"]).data.metrics
    assert logged["validation_accuracy_onnx_int8"] == pytest.approx(recorded["onnx-int8"]["validation_accuracy"])
    card = (step_inputs["root"] / "card.md").read_text()
    section = card.split("## Serving backends", 1)[1].split("\n## ", 1)[0]
    for name in BACKENDS:
        assert f"| {name} | {recorded[name]['validation_accuracy']:.4f} |" in section


def test_the_onnx_graph_computes_what_pytorch_does_at_any_batch_size_and_length(
    step_inputs: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fp32 ONNX against PyTorch in fp32 (bf16 autocast off): the same probabilities and truncation flags, in
    batches of 1, 5 and 64 of mixed lengths (the graph was traced on one 2 x 8 example); int8 stays close."""
    from textclf.serve.classifier import TextClassifier

    monkeypatch.setenv("TEXTCLF_DISABLE_BF16", "1")
    by_backend = {name: TextClassifier.load(step_inputs["model"], backend=name) for name in BACKENDS}
    for batch_size in (1, 5, 64):
        results = {name: c.predict(TEXTS, batch_size=batch_size) for name, c in by_backend.items()}
        torch_result = results["torch"]
        assert torch_result.truncated.any() and not torch_result.truncated.all()
        np.testing.assert_allclose(results["onnx"].probabilities, torch_result.probabilities, atol=1e-5)
        assert results["onnx"].truncated.tolist() == torch_result.truncated.tolist()
        np.testing.assert_allclose(results["onnx-int8"].probabilities, torch_result.probabilities, atol=0.05)
        for result in results.values():
            np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="backend='torch'"):
        by_backend["onnx"].predict(["text"], embeddings=True)


@pytest.mark.parametrize("backend", list(ONNX_FILES))
def test_a_hostile_100000_character_text_is_cut_and_answered_quickly_on_onnx(step_inputs: dict, backend: str) -> None:
    from textclf.serve.classifier import TextClassifier

    classifier = TextClassifier.load(step_inputs["model"], backend=backend)
    texts = [shape(100_000) for shape in HOSTILE_SHAPES.values()]
    started = time.perf_counter()
    result = classifier.predict(texts)
    assert time.perf_counter() - started < 30
    assert result.probabilities.shape == (len(texts), len(classifier.labels))
    assert np.isfinite(result.probabilities).all()


def test_auto_serves_only_backends_within_the_accuracy_tolerance() -> None:
    torch_accuracy = 0.9
    record = {
        "torch": {"validation_accuracy": torch_accuracy},
        "onnx": {"validation_accuracy": torch_accuracy - AUTO_ACCURACY_TOLERANCE},
        "onnx-int8": {"validation_accuracy": torch_accuracy - AUTO_ACCURACY_TOLERANCE - 0.001},
    }
    assert eligible_backends(record) == ["torch", "onnx"]
    assert eligible_backends({**record, "onnx-int8": {"validation_accuracy": 0.95}}) == list(BACKENDS)
    assert eligible_backends({**record, "onnx": {"export_error": "unsupported operator"}}) == ["torch"]
    assert eligible_backends({}) == ["torch"]


def test_auto_times_backends_in_rotating_turns_so_one_slow_burst_does_not_decide() -> None:
    calls: list[str] = []

    def backend(name: str, seconds: float, burst_calls: int = 0):
        def predict(texts: list[str]) -> None:
            calls.append(name)
            time.sleep(0.03 if calls.count(name) <= burst_calls else seconds)

        return predict

    # "fast" is five times as fast as "slow" (a margin no scheduler delay on a busy machine closes), but its whole
    # first turn lands in a burst of noise 15x slower.
    per_turn = len(TIMING_BATCH_SIZES) * (TIMING_REPEATS + 1)
    timings = time_backends({"fast": backend("fast", 0.002, burst_calls=per_turn), "slow": backend("slow", 0.010)})
    assert min(timings, key=lambda timing: timing.cost).backend == "fast"
    turns = [calls[start] for start in range(0, len(calls), per_turn)]
    assert all(len(set(calls[start : start + per_turn])) == 1 for start in range(0, len(calls), per_turn))
    assert turns == ["fast", "slow", "slow", "fast", "fast", "slow"][: 2 * TIMING_ROUNDS]


def test_a_directory_without_exports_is_exported_and_measured_at_load_outside_itself(
    step_inputs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model directory from before the ONNX backends: `auto` exports once into the scratch directory it is given,
    measures each backend on the reference sample, times the eligible ones and serves the fastest, and the
    directory itself is left as it was."""
    import textclf.serve.classifier as classifier_module
    from textclf.serve.classifier import load_fastest

    old = without_exports(step_inputs["model"], tmp_path / "old")
    before = sorted(path.name for path in old.iterdir())
    exports = []
    export = classifier_module.export_onnx
    monkeypatch.setattr(classifier_module, "export_onnx", lambda *args: exports.append(args) or export(*args))
    selection = load_fastest(old, export_to=tmp_path / "scratch")
    assert len(exports) == 1, "each backend loads the export made once into the scratch directory"
    assert sorted(path.name for path in old.iterdir()) == before
    assert {path.name for path in (tmp_path / "scratch").iterdir()} == set(ONNX_FILES.values())
    assert selection.eligible[0] == "torch" and set(selection.eligible) <= set(BACKENDS)
    assert [timing.backend for timing in selection.timings] == selection.eligible
    fastest = min(selection.timings, key=lambda timing: timing.cost).backend
    assert selection.classifier.backend.name == fastest
    assert selection.classifier.predict(["A lovely film."]).labels[0] in selection.classifier.labels


def test_a_single_eligible_backend_is_loaded_without_timing(step_inputs: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import textclf.serve.classifier as classifier_module

    def not_expected(*args: object) -> None:
        raise AssertionError("one eligible backend has nothing to be timed against")

    monkeypatch.setattr(classifier_module, "eligible_backends", lambda recorded, installed: ["torch"])
    monkeypatch.setattr(classifier_module, "time_backends", not_expected)
    selection = classifier_module.load_fastest(step_inputs["model"])
    assert selection.classifier.backend.name == "torch" and selection.timings == []


def test_an_export_that_fails_leaves_the_model_on_pytorch(
    step_inputs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import textclf.serve.classifier as classifier_module

    def unsupported(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Exporting the operator 'aten::made_up' to ONNX opset version 17 is not supported")

    monkeypatch.setattr(classifier_module, "export_onnx", unsupported)
    old = without_exports(step_inputs["model"], tmp_path / "old")
    recorded = classifier_module.measure_backends(old, export_to=tmp_path / "scratch")
    assert "aten::made_up" in recorded["onnx"]["export_error"]
    assert eligible_backends(recorded) == ["torch"]
    assert classifier_module.load_fastest(old, export_to=tmp_path / "scratch").classifier.backend.name == "torch"
    with pytest.raises(RuntimeError, match="aten::made_up"):
        classifier_module.TextClassifier.load(old, backend="onnx", export_to=tmp_path / "scratch")


def test_an_environment_without_pytorch_serves_the_onnx_graphs_or_says_what_it_lacks() -> None:
    """The serving image holds ONNX Runtime only: `auto` chooses among the ONNX graphs within the tolerance, and a
    model only PyTorch may serve fails to load naming the package, not with an ImportError deep in a thread."""
    from textclf.serve.backends import BackendUnavailable

    recorded = {
        "torch": {"validation_accuracy": 0.90},
        "onnx": {"validation_accuracy": 0.90},
        "onnx-int8": {"validation_accuracy": 0.85},
    }
    assert eligible_backends(recorded, ["onnx", "onnx-int8"]) == ["onnx"]
    assert eligible_backends(recorded) == ["torch", "onnx"]
    with pytest.raises(
        BackendUnavailable, match=r"served only by torch \(.*\), and this environment lacks torch \(it has onnx\)"
    ):
        eligible_backends({"torch": {"validation_accuracy": 0.9}, "onnx": {"export_error": "x"}}, ["onnx"])


def test_loading_the_torch_backend_without_pytorch_names_the_extra(
    step_inputs: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from textclf.serve.backends import BackendUnavailable
    from textclf.serve.classifier import TextClassifier

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real_find_spec(name, *a)
    )
    with pytest.raises(BackendUnavailable, match=r"the torch backend needs torch.*textclf\[train\]"):
        TextClassifier.load(step_inputs["model"], backend="torch")


def test_a_classifier_saves_as_a_model_directory_that_loads_and_predicts_the_same(
    step_inputs: dict, tmp_path: Path
) -> None:
    """The model as one object: `TextClassifier` loads a directory, predicts probabilities, and saves itself
    (weights, tokenizer, metadata, reference sample, ONNX exports with each backend's accuracy recorded)."""
    from textclf.registry.model_dir import ModelDirectory
    from textclf.serve.classifier import TextClassifier

    original = TextClassifier.load(step_inputs["model"])
    reference = ModelDirectory(step_inputs["model"]).reference()
    saved = original.save(tmp_path / "copy", reference)
    assert set(saved.metadata().backends) == set(BACKENDS)
    assert all(saved.onnx_file(name).stat().st_size > 0 for name in ONNX_FILES)
    assert saved.reference().equals(reference)
    again = TextClassifier.load(saved.path)
    probabilities = again.predict_proba(TEXTS[:6])
    assert probabilities.shape == (6, len(again.labels))
    np.testing.assert_allclose(probabilities, original.predict_proba(TEXTS[:6]), atol=1e-6)
    onnx = TextClassifier.load(saved.path, backend="onnx-int8")
    with pytest.raises(TypeError, match="only a PyTorch classifier"):
        onnx.save(tmp_path / "from-onnx", reference)
