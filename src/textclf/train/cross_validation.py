"""k-fold cross-validation: how much a training recipe's scores vary with the data it happens to get.

The rows are split into K stratified folds; each fold is held out once while a model trains on the other K-1
(with a stratified share of them as its validation split, for early stopping and checkpoint selection, as in a
normal run). Scores on the held-out folds give a mean and a standard deviation, overall and per class."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textclf.data.preprocess import LABEL_ID, LabelMap, Truncation
from textclf.data.sources import LABEL, TEXT
from textclf.train.trainer import TrainingParams

MIN_FOLDS = 2
DEFAULT_FOLDS = 5
"""`textclf cv`'s number of folds unless told otherwise: the field's habit (scikit-learn's `cv=5`)."""


@dataclass(frozen=True)
class Fold:
    number: int
    """1-based, as people count folds."""
    train_index: np.ndarray
    test_index: np.ndarray


def check_fold_count(folds: int) -> None:
    if folds < MIN_FOLDS:
        raise ValueError(f"cross-validation needs at least {MIN_FOLDS} folds; got {folds}")


def check_folds(labels: Sequence[str], folds: int) -> None:
    """Raise a `ValueError` that says what to change when `labels` cannot be split into `folds` stratified
    folds: fewer than two folds, fewer than two classes, or a class with fewer rows than folds (a fold
    without a row of it could not score it)."""
    check_fold_count(folds)
    counts = Counter(str(label) for label in labels)
    if len(counts) < 2:
        raise ValueError(f"cross-validation needs at least two classes; the data has {sorted(counts)}")
    short = {label: count for label, count in sorted(counts.items()) if count < folds}
    if short:
        listed = ", ".join(f"{label!r} has {count}" for label, count in short.items())
        raise ValueError(
            f"{folds}-fold cross-validation needs at least {folds} rows of every class, one per fold: {listed}; "
            f"lower the number of folds (at most {min(counts.values())} here) or add rows"
        )


def stratified_folds(labels: Sequence[str], folds: int, seed: int) -> list[Fold]:
    """K folds with each class's rows spread evenly across them, shuffled by `seed`."""
    from sklearn.model_selection import StratifiedKFold

    check_folds(labels, folds)
    targets = np.asarray([str(label) for label in labels])
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [
        Fold(number, train_index, test_index)
        for number, (train_index, test_index) in enumerate(splitter.split(np.zeros(len(targets)), targets), start=1)
    ]


def split_off_validation(
    frame: pd.DataFrame, validation_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A fold's training rows less a validation share, stratified where every class has two rows to split."""
    from sklearn.model_selection import train_test_split

    counts = frame[LABEL].value_counts()
    stratify = frame[LABEL] if counts.min() >= 2 else None
    size = max(validation_fraction, len(counts) / len(frame)) if stratify is not None else validation_fraction
    train, validation = train_test_split(frame, test_size=size, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), validation.reset_index(drop=True)


def _mean_and_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof=1) across folds."""
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0}


def summarize_folds(fold_scores: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Mean ± standard deviation of accuracy, macro F1 and each class's F1 over the folds' scores."""
    return {
        "folds": len(fold_scores),
        "accuracy": _mean_and_std([fold["accuracy"] for fold in fold_scores]),
        "macro_f1": _mean_and_std([fold["macro_f1"] for fold in fold_scores]),
        "per_class_f1": {
            label: _mean_and_std([fold["per_class"][label]["f1"] for fold in fold_scores]) for label in labels
        },
    }


FoldCallback = Callable[[Fold, dict[str, Any]], None]


def fold_recipe(
    params: TrainingParams, base_model: str, rows: int, folds: int, validation_fraction: float
) -> TrainingParams:
    """The one recipe every fold trains with: `auto` settings decided for the base model and for about the rows a
    fold trains on (the data less one fold, less the validation share), so the folds differ only in their data."""
    fold_rows = round(rows * (folds - 1) / folds * (1 - validation_fraction))
    return params.for_model(base_model).for_data(fold_rows)


def cross_validate(
    prepared: pd.DataFrame,
    label_map: LabelMap,
    base_model: str,
    params: TrainingParams,
    max_length: int,
    truncation: Truncation,
    predict_max_length: int,
    folds: int,
    validation_fraction: float,
    work_dir: Path,
    on_fold: FoldCallback | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Train and score one model per fold on prepared (tokenized) rows; returns each fold's scores and their
    summary. Held-out rows are predicted at the prediction length, as the evaluate step does
    (`prediction_max_length`). `on_fold` hears of each fold as it finishes (a tracking run per fold, progress
    lines)."""
    from textclf.metrics import classification_metrics
    from textclf.serve.classifier import predict_probabilities
    from textclf.train.modeling import prediction_max_length
    from textclf.train.trainer import TrainingJob, train_classifier

    params = fold_recipe(params, base_model, len(prepared), folds, validation_fraction)
    fold_scores = []
    for fold in stratified_folds(prepared[LABEL].tolist(), folds, params.seed):
        held_out = prepared.iloc[fold.test_index].reset_index(drop=True)
        train, validation = split_off_validation(
            prepared.iloc[fold.train_index].reset_index(drop=True), validation_fraction, params.seed
        )
        result = train_classifier(
            TrainingJob(base_model, train, validation, label_map, params, max_length, truncation),
            work_dir / f"fold-{fold.number}",
            show_progress=show_progress,
        )
        predict_length = prediction_max_length(result.model, result.tokenizer, max_length, predict_max_length)
        probabilities = predict_probabilities(
            result.model, result.tokenizer, held_out[TEXT].tolist(), predict_length, truncation=truncation
        )
        metrics = classification_metrics(held_out[LABEL_ID].to_numpy(), probabilities, label_map.labels)
        scores = {
            "fold": fold.number,
            "train_rows": len(train),
            "validation_rows": len(validation),
            "test_rows": len(held_out),
            "epochs_run": len(result.history),
            "train_seconds": result.train_seconds,
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "per_class": metrics["per_class"],
            "class_weighted": result.class_weights is not None,
        }
        fold_scores.append(scores)
        if on_fold is not None:
            on_fold(fold, scores)
    return {"summary": summarize_folds(fold_scores, label_map.labels), "folds": fold_scores}
