"""`textclf evaluate`: any model (registry alias, run, directory) on any labelled data."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from textclf.data.sources import LABEL, TEXT, DataSource, DataValidationError, load_source, validate_frame
from textclf.metrics import classification_metrics
from textclf.registry.model_uri import resolve_model_dir
from textclf.serve.classifier import TextClassifier


def evaluate_model_on_data(model: str, source: DataSource, tracking_uri: str) -> dict[str, Any]:
    frame = validate_frame(load_source(source))
    with tempfile.TemporaryDirectory() as scratch:
        classifier = TextClassifier.load(resolve_model_dir(model, tracking_uri, Path(scratch)))
    unknown = sorted(set(frame[LABEL]) - set(classifier.labels))
    if unknown:
        raise DataValidationError(
            f"label(s) {unknown} are not classes of this model ({', '.join(classifier.labels)}); "
            "map them to the model's class names first"
        )
    predictions = classifier.predict(frame[TEXT].tolist())
    label2id = {label: index for index, label in enumerate(classifier.labels)}
    true_ids = np.array([label2id[label] for label in frame[LABEL]])
    return {
        "model": model,
        "data": source.spec,
        **classification_metrics(true_ids, predictions.probabilities, classifier.labels),
    }
