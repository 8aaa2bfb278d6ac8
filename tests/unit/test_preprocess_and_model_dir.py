"""Preprocessing, the model directory contract, and prediction through the serving path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from textclf.data.cleaning import CleaningConfig
from textclf.data.preprocess import LabelMap, prepare_split
from textclf.registry.model_dir import ModelDirectory, ModelMetadata
from textclf.serve.classifier import TextClassifier
from textclf.train.modeling import LoraSettings, build_classifier, load_tokenizer, merge_for_serving

pytestmark = pytest.mark.unit


def test_label_map_is_sorted_and_encodes_by_position() -> None:
    label_map = LabelMap.from_labels(["pos", "neg", "pos", "mixed"])
    assert label_map.labels == ("mixed", "neg", "pos")
    assert label_map.encode(pd.Series(["pos", "neg"])) == [2, 1]
    assert label_map.id2label == {0: "mixed", 1: "neg", 2: "pos"}
    with pytest.raises(ValueError, match="not in the label map"):
        label_map.encode(pd.Series(["unknown"]))


def test_prepare_split_cleans_tokenizes_truncates_and_drops_emptied_rows(tiny_model_dir: Path) -> None:
    frame = pd.DataFrame(
        {"text": ["<b>Good</b> film", "https://only.a/url", "word " * 50], "label": ["pos", "neg", "neg"]}
    )
    tokenizer = load_tokenizer(str(tiny_model_dir))
    prepared = prepare_split(frame, CleaningConfig(), tokenizer, LabelMap(("neg", "pos")), max_length=16)
    assert prepared.emptied_by_cleaning == 1
    assert prepared.truncated == 1
    assert prepared.frame["text"].tolist()[0] == "Good film"
    assert prepared.frame["label_id"].tolist() == [1, 0]
    assert prepared.frame["length"].max() == 16


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_saved_directory_loads_with_plain_transformers_and_predicts(
    tiny_model_dir: Path, tmp_path: Path, finetune: str
) -> None:
    from transformers import AutoModelForSequenceClassification

    label_map = LabelMap(("negative", "positive"))
    model = merge_for_serving(
        build_classifier(
            str(tiny_model_dir), label_map, finetune, LoraSettings(r=4, alpha=8, dropout=0.1), True, seed=0
        )
    )
    metadata = ModelMetadata(
        base_model=str(tiny_model_dir),
        finetune=finetune,
        max_length=32,
        labels=list(label_map.labels),
        cleaning=CleaningConfig(lowercase=True).to_dict(),
        training_params={"epochs": 1},
        metrics={"validation": {"accuracy": 0.5}},
        data_fingerprint="abc",
    )
    reference = pd.DataFrame({"text": ["a"], "label": ["positive"], "predicted_label": ["negative"], "score": [0.6]})
    ModelDirectory(tmp_path / "model").write(model, load_tokenizer(str(tiny_model_dir)), metadata, reference)

    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    assert plain.config.id2label == {0: "negative", 1: "positive"}
    assert not any("lora" in name for name, _ in plain.named_parameters())
    assert ModelDirectory(tmp_path / "model").metadata().cleaning["lowercase"] is True
    assert ModelDirectory(tmp_path / "model").reference().equals(reference)

    classifier = TextClassifier.load(tmp_path / "model")
    predictions = classifier.predict(["A <i>fine</i> film", "bad", "x " * 200])
    assert set(predictions.labels) <= {"negative", "positive"}
    assert predictions.probabilities.shape == (3, 2)
    assert predictions.probabilities.sum(axis=1) == pytest.approx([1, 1, 1], abs=1e-5)
    assert predictions.truncated.tolist() == [False, False, True]


def test_reference_sample_must_have_the_contract_columns(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reference sample lacks"):
        ModelDirectory(tmp_path).write(None, None, None, pd.DataFrame({"text": ["a"]}))


def test_missing_metadata_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a textclf model directory"):
        ModelDirectory(tmp_path).metadata()
