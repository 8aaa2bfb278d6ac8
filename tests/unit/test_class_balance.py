"""Skewed classes: when the loss is weighted, with which weights, what training selects by, and where a rare
class is reported (data report, model card, run summary)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from textclf.data.balance import RARE_SHARE_OF_EVEN, SKEWED_CLASS_RATIO, ClassBalance
from textclf.data.cleaning import CleaningConfig
from textclf.data.ingest import data_report, ingest
from textclf.data.preprocess import LabelMap, prepare_split
from textclf.data.sources import DataSource
from textclf.evaluate.report import ModelCardInputs, model_card
from textclf.train.modeling import load_tokenizer
from textclf.train.trainer import TrainingJob, TrainingParams, _weighted_cross_entropy, train_classifier

pytestmark = pytest.mark.unit


def test_balance_of_even_classes_is_not_skewed_and_has_unit_weights() -> None:
    balance = ClassBalance.of(["a", "b", "c"] * 50)
    assert balance.ratio == 1.0
    assert not balance.skewed
    assert balance.rare == {}
    assert balance.loss_weights("auto") is None
    assert balance.loss_weights("none") is None
    assert balance.loss_weights("balanced") == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert balance.warnings() == []


def test_skewed_classes_get_balanced_weights_that_give_every_class_the_same_total() -> None:
    labels = ["big"] * 900 + ["mid"] * 300 + ["tiny"] * 30
    balance = ClassBalance.of(labels, classes=["big", "mid", "tiny"])
    assert balance.ratio == 30.0
    assert balance.skewed
    weights = balance.loss_weights("auto")
    assert weights == balance.balanced_weights()
    assert list(weights) == ["big", "mid", "tiny"]  # label-id order, as the loss needs it
    totals = {label: weights[label] * count for label, count in balance.counts.items()}
    assert totals == pytest.approx(dict.fromkeys(totals, len(labels) / 3))
    assert balance.loss_weights("none") is None


def test_auto_weighting_starts_at_the_documented_ratio() -> None:
    below = ClassBalance({"a": int(SKEWED_CLASS_RATIO * 100) - 1, "b": 100})
    at = ClassBalance({"a": int(SKEWED_CLASS_RATIO * 100), "b": 100})
    assert below.loss_weights("auto") is None
    assert at.loss_weights("auto") is not None


def test_rare_means_under_a_quarter_of_an_even_share_and_the_warning_says_what_to_do() -> None:
    # Six classes: an even share is 1/6; rare is under RARE_SHARE_OF_EVEN of it.
    counts = {f"c{i}": 1000 for i in range(5)}
    counts["rare"] = 90
    counts["borderline"] = 1000
    balance = ClassBalance(counts)
    assert set(balance.rare) == {"rare"}
    assert balance.rare["rare"] < RARE_SHARE_OF_EVEN / len(counts)
    [warning] = balance.warnings()
    assert "'rare'" in warning and "90 of 6,090 rows" in warning and "more labelled rows" in warning


def test_a_class_absent_from_the_counts_makes_the_ratio_infinite_and_gets_no_weight() -> None:
    balance = ClassBalance.of(["a"] * 10, classes=["a", "b"])
    assert balance.ratio == float("inf")
    assert balance.skewed
    assert balance.balanced_weights() == {"a": 1.0, "b": 0.0}


def test_an_unknown_weighting_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="'auto', 'balanced' or 'none'"):
        ClassBalance({"a": 1, "b": 1}).loss_weights("sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="class_weighting"):
        TrainingParams(class_weighting="sometimes")


def test_weighted_loss_is_the_weighted_mean_of_per_row_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, -1.0]])
    labels = torch.tensor([0, 1, 1, 0])
    weights = [0.5, 3.0]
    loss = _weighted_cross_entropy(weights)({"logits": logits}, labels)
    per_row = -torch.log_softmax(logits, dim=-1)[torch.arange(4), labels].numpy()
    row_weights = np.array([weights[label] for label in labels.tolist()])
    assert float(loss) == pytest.approx(float((per_row * row_weights).sum() / row_weights.sum()), rel=1e-6)


def _skewed_frame(rows_per_class: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Distinct short texts with the class counts asked for."""
    rng = np.random.default_rng(seed)
    filler = [
        "the",
        "a",
        "of",
        "and",
        "to",
        "in",
        "is",
        "it",
        "that",
        "was",
        "for",
        "on",
        "with",
        "as",
        "this",
        "at",
        "by",
    ]
    rows = []
    for label, count in rows_per_class.items():
        for index in range(count):
            words = [*rng.choice(filler, size=8), label, f"n{index}"]
            rng.shuffle(words)
            rows.append({"text": " ".join(words), "label": label})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def skewed(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("skewed") / "skewed.csv"
    _skewed_frame({"common": 300, "other": 300, "rare": 30}).to_csv(path, index=False)
    result = ingest(DataSource(str(path)), 0.2, 0.2, seed=1)
    label_map = LabelMap.from_labels(result.splits["train"]["label"])
    tokenizer = load_tokenizer(str(tiny_model_dir))
    frames = {
        name: prepare_split(frame, CleaningConfig(), tokenizer, label_map, 16).frame
        for name, frame in result.splits.items()
    }
    return result, frames, label_map


def test_data_report_warns_about_a_rare_training_class(skewed) -> None:
    result, _, _ = skewed
    report = data_report(result)
    assert "In the training split:" in report
    assert "**Warning:** class 'rare' is rare" in report
    assert "'common' is rare" not in report


@pytest.mark.parametrize(("weighting", "weighted"), [("auto", True), ("none", False)])
def test_training_on_skewed_classes_weights_the_loss_and_selects_by_macro_f1_unless_turned_off(
    skewed, tiny_model_dir: Path, tmp_path: Path, weighting: str, weighted: bool
) -> None:
    _, frames, label_map = skewed
    selected_by: list[str] = []

    from transformers import TrainerCallback

    class RecordSelection(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            selected_by.append(args.metric_for_best_model)

    params = TrainingParams(finetune="full", epochs=1, batch_size=16, learning_rate=1e-3, class_weighting=weighting)
    result = train_classifier(
        TrainingJob(str(tiny_model_dir), frames["train"], frames["validation"], label_map, params, 16),
        tmp_path,
        callbacks=[RecordSelection()],
        show_progress=False,
    )
    if weighted:
        assert result.class_weights is not None
        assert result.class_weights["rare"] > 5 * result.class_weights["common"]
        assert selected_by == ["macro_f1"]
    else:
        assert result.class_weights is None
        assert selected_by == ["accuracy"]


def test_model_card_shows_class_balance_weights_and_a_rare_class_warning() -> None:
    per_class = {
        "common": {"precision": 0.9, "recall": 0.95, "f1": 0.92, "support": 100},
        "rare": {"precision": 0.5, "recall": 0.3, "f1": 0.375, "support": 5},
    }
    metrics = {
        name: 0.9 for name in ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall", "ece")
    } | {"mean_confidence": 0.9, "per_class": per_class}
    inputs = ModelCardInputs(
        model_name="m",
        data_spec="skewed.csv",
        data_fingerprint="f",
        split_sizes={"train": 420},
        base_model="tiny",
        training_params={"class_weighting": "auto", "class_weights": {"common": 0.525, "rare": 10.5}},
        metrics=metrics,
        baselines={},
        labels=["common", "rare"],
        train_class_counts={"common": 400, "rare": 20},
    )
    card = model_card(inputs)
    assert "## Class balance" in card
    assert "| rare | 20 | 4.8% | 10.500 | 0.3750 |" in card
    assert "20.0x the rows of the smallest: the loss was class-weighted" in card
    assert "**Warning:** class 'rare' is rare" in card
    assert "class_weights:" not in card  # shown in the table, not as a raw dict
    unweighted = model_card(
        ModelCardInputs(**{**inputs.__dict__, "training_params": {"class_weighting": "none", "class_weights": None}})
    )
    assert "| rare | 20 | 4.8% | 1 | 0.3750 |" in unweighted
    assert "the loss was not class-weighted" in unweighted


def test_model_directory_records_the_weights_training_used(step_inputs: dict) -> None:
    """The fixture pipeline's classes are even: the directory says no weights were used."""
    metadata = json.loads((step_inputs["model"] / "textclf.json").read_text())
    assert metadata["training_params"]["class_weighting"] == "auto"
    assert metadata["training_params"]["class_weights"] is None
    assert metadata["metrics"]["class_weighted"] is False
    card = (step_inputs["root"] / "card.md").read_text()
    assert "## Class balance" in card and "the loss was not class-weighted" in card
