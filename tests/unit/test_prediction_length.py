"""The prediction length: a model fine-tuned on `max_length` tokens predicts with up to `predict_max_length`,
within the encoder's positions, and every place that predicts for a model directory reads the same number."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from textclf.data.cleaning import CleaningConfig
from textclf.data.preprocess import Preprocessing
from textclf.registry.model_dir import ModelDirectory, ModelMetadata
from textclf.serve.classifier import TextClassifier
from textclf.train.modeling import build_classifier, load_tokenizer, prediction_max_length

pytestmark = pytest.mark.unit


def encoder(positions: int | None, tokenizer_limit: float):
    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=positions))
    return model, SimpleNamespace(model_max_length=tokenizer_limit)


@pytest.mark.parametrize(
    ("positions", "tokenizer_limit", "max_length", "requested", "expected"),
    [
        (512, 512, 128, 512, 512),  # MiniLM, BERT: the whole pre-trained length
        (512, 512, 128, 4096, 512),  # asked beyond the positions: capped
        (128, 512, 32, 512, 128),  # the configuration's positions are fewer than the tokenizer says
        (514, 512, 128, 4096, 512),  # RoBERTa: 514 positions, of which the tokenizer says 512 are usable
        (512, 1e30, 128, 4096, 512),  # a tokenizer with no recorded limit (transformers' VERY_LARGE_INTEGER)
        (None, 1e30, 128, 4096, 128),  # no limit known at all: what training read, the one length known to work
        (512, 512, 128, 0, 128),  # 0: as in training
        (512, 512, 256, 64, 256),  # never fewer tokens than training read
    ],
)
def test_the_prediction_length_is_asked_for_within_the_encoders_positions_and_never_below_training(
    positions, tokenizer_limit, max_length: int, requested: int, expected: int
) -> None:
    model, tokenizer = encoder(positions, tokenizer_limit)
    assert prediction_max_length(model, tokenizer, max_length, requested) == expected


def test_files_from_before_the_setting_predict_at_the_training_length(tmp_path: Path) -> None:
    old = tmp_path / "preprocessing.json"
    Preprocessing(("a", "b"), {}, "m", 64, "head_tail").save(old)
    values = json.loads(old.read_text())
    del values["predict_max_length"]
    old.write_text(json.dumps(values))
    assert Preprocessing.load(old).predict_max_length == 0
    metadata = ModelMetadata("m", "full", 64, ["a", "b"], {}, {}, {}, "f")
    assert metadata.prediction_length == 64
    assert replace(metadata, predict_max_length=256).prediction_length == 256


@pytest.fixture
def model_dir(tiny_model_dir: Path, tmp_path: Path) -> Path:
    from textclf.data.preprocess import LabelMap

    label_map = LabelMap(("negative", "positive"))
    metadata = ModelMetadata(
        base_model=str(tiny_model_dir),
        finetune="full",
        max_length=16,
        labels=list(label_map.labels),
        cleaning=CleaningConfig().to_dict(),
        training_params={},
        metrics={},
        data_fingerprint="abc",
        truncation="head_tail",
    )
    reference = pd.DataFrame({"text": ["a"], "label": ["positive"], "predicted_label": ["negative"], "score": [0.6]})
    model = build_classifier(str(tiny_model_dir), label_map, "full", None, False, seed=0)
    ModelDirectory(tmp_path / "model").write(model, load_tokenizer(str(tiny_model_dir)), metadata, reference)
    return tmp_path / "model"


@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_a_directory_predicts_at_its_prediction_length_on_every_backend(model_dir: Path, backend: str) -> None:
    # About 60 tokens: cut at the training length (16), whole at a prediction length of 100.
    text = " ".join(f"word{index}" for index in range(20))
    trained_length = TextClassifier.load(model_dir, backend=backend).predict([text])
    assert trained_length.truncated.tolist() == [True]

    ModelDirectory(model_dir).write_metadata(replace(TextClassifier.load(model_dir).metadata, predict_max_length=100))
    longer = TextClassifier.load(model_dir, backend=backend)
    assert longer.predict([text]).truncated.tolist() == [False]
    assert longer.predict([text * 5]).truncated.tolist() == [True]
    # The monitor's shorter embedding encodings still cut sooner.
    assert longer.predict([text], max_length=16).truncated.tolist() == [True]
    assert not (longer.predict([text]).probabilities == trained_length.probabilities).all()


def test_the_untrained_baseline_predicts_within_the_encoders_positions(tiny_model_dir: Path) -> None:
    from textclf.data.preprocess import LabelMap
    from textclf.evaluate.baselines import untrained_baseline

    # Far beyond the tiny BERT's 128 positions: asked for 512 tokens, it must read 128, not fail on position 129.
    test = pd.DataFrame({"text": [" ".join(f"word{index}" for index in range(300))] * 4, "label": ["a", "b"] * 2})
    metrics = untrained_baseline(str(tiny_model_dir), test, LabelMap(("a", "b")), CleaningConfig(), 16, 512, 0)
    assert metrics["samples"] == 4


def test_texts_of_very_different_lengths_go_in_separate_sub_batches() -> None:
    """A short text beside long ones would be padded to their length: a one-text request sharing a batch with a
    long request's slice cost as much as a long text."""
    from textclf.serve.classifier import length_groups

    lengths = [512, 30, 512, 28, 40, 200, 512, 90]
    groups = length_groups(lengths, batch_size=2)
    assert sorted(int(index) for group in groups for index in group) == list(range(len(lengths)))
    assert all(len(group) <= 2 for group in groups)
    for group in groups:
        shortest, longest = min(lengths[i] for i in group), max(lengths[i] for i in group)
        assert longest <= max(2 * shortest, shortest + 32), [lengths[i] for i in group]
    assert [len(group) for group in length_groups([30] * 5 + [512] * 5, batch_size=64)] == [5, 5]


def test_predictions_do_not_depend_on_the_texts_beside_them(model_dir: Path) -> None:
    classifier = TextClassifier.load(model_dir, backend="torch")
    short, long = "a short text", " ".join(f"word{index}" for index in range(40))
    alone = classifier.predict([short]).probabilities
    mixed = classifier.predict([long, short, long]).probabilities
    assert abs(mixed[1] - alone[0]).max() < 1e-5
