"""What the quality benchmarks share: the shared data's location, and one textclf training run (the pipeline's
own functions, `TrainingParams` defaults unless overridden) scored on a test set next to TF-IDF + LR."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
SEED = 42


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`--set KEY=VALUE` options as a mapping `TrainingParams` validates."""
    return dict(item.split("=", 1) for item in items)


def train_and_score(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    overrides: dict[str, str],
    callbacks: Sequence = (),
) -> dict:
    """Fine-tune the packaged MiniLM on raw (text, label) splits exactly as the pipeline does and score it on
    `test`: accuracy, macro F1, per class, training time and epochs. `overrides` may set `TrainingParams`
    fields and the pipeline's `max_length` and `truncation`; the rest are the pipeline's defaults."""
    import numpy as np

    from textclf.config import PipelineConfig
    from textclf.data.cleaning import CleaningConfig
    from textclf.data.preprocess import LabelMap, prepare_split
    from textclf.data.sources import LABEL, TEXT
    from textclf.evaluate.metrics import classification_metrics
    from textclf.serve.classifier import predict_probabilities
    from textclf.train.modeling import PACKAGED_MINILM, load_tokenizer
    from textclf.train.trainer import TrainingParams, train_classifier

    overrides = dict(overrides)
    encoding = {name: overrides.pop(name, None) for name in ("max_length", "truncation")}
    config = PipelineConfig(**{name: value for name, value in encoding.items() if value is not None})
    max_length, truncation = config.max_length, config.truncation
    params = TrainingParams.model_validate(overrides)
    label_map = LabelMap.from_labels(train[LABEL])
    tokenizer = load_tokenizer(PACKAGED_MINILM)
    prepared = {
        name: prepare_split(frame, CleaningConfig(), tokenizer, label_map, max_length, truncation).frame
        for name, frame in {"train": train, "validation": validation, "test": test}.items()
    }
    with tempfile.TemporaryDirectory() as work:
        trained = train_classifier(
            PACKAGED_MINILM,
            prepared["train"],
            prepared["validation"],
            label_map,
            params,
            Path(work),
            max_length,
            truncation,
            callbacks=callbacks,
            show_progress=False,
        )
    probabilities = predict_probabilities(
        trained.model, trained.tokenizer, prepared["test"][TEXT].tolist(), max_length, truncation=truncation
    )
    metrics = classification_metrics(np.asarray(prepared["test"]["label_id"]), probabilities, label_map.labels)
    return {
        "params": params.for_model(PACKAGED_MINILM).to_dict() | {"max_length": max_length, "truncation": truncation},
        "metrics": metrics,
        "train_rows": len(prepared["train"]),
        "test_rows": len(prepared["test"]),
        "train_seconds": trained.train_seconds,
        "train_samples_per_second": trained.train_samples_per_second,
        "bf16": trained.bf16,
        "epochs_run": len(trained.history),
        "class_weights": trained.class_weights,
    }


def tfidf_and_score(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """TF-IDF + logistic regression, the evaluate step's baseline, on the same splits."""
    from textclf.data.cleaning import CleaningConfig
    from textclf.data.preprocess import LabelMap
    from textclf.data.sources import LABEL
    from textclf.evaluate.baselines import tfidf_baseline

    started = time.perf_counter()
    metrics = tfidf_baseline(train, test, LabelMap.from_labels(train[LABEL]), CleaningConfig(), SEED)
    return {"metrics": metrics, "train_seconds": time.perf_counter() - started}
