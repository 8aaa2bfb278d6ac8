"""Baselines scored on the same test split as the model: TF-IDF + logistic regression, and the base encoder
with an untrained head ("confidence before training")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from textclf.data.cleaning import CleaningConfig, clean_texts
from textclf.data.preprocess import LabelMap, Truncation
from textclf.data.sources import LABEL, TEXT
from textclf.metrics import classification_metrics


def tfidf_baseline(
    train: pd.DataFrame, test: pd.DataFrame, label_map: LabelMap, cleaning: CleaningConfig, seed: int
) -> dict[str, Any]:
    """TF-IDF word uni- and bigrams with logistic regression, trained and scored on the same splits."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True),
        LogisticRegression(C=4.0, max_iter=2000, random_state=seed),
    )
    pipeline.fit(clean_texts(train[TEXT].tolist(), cleaning), label_map.encode(train[LABEL]))
    probabilities = pipeline.predict_proba(clean_texts(test[TEXT].tolist(), cleaning))
    # predict_proba's columns follow the classes seen in training; align them with the label map.
    aligned = np.zeros((len(test), len(label_map.labels)))
    aligned[:, pipeline.classes_] = probabilities
    return classification_metrics(np.asarray(label_map.encode(test[LABEL])), aligned, label_map.labels)


def untrained_baseline(
    base_model: str,
    test: pd.DataFrame,
    label_map: LabelMap,
    cleaning: CleaningConfig,
    max_length: int,
    predict_max_length: int,
    seed: int,
    truncation: Truncation = "head",
) -> dict[str, Any]:
    """The base encoder with its freshly initialised head, before any fine-tuning ("confidence before"),
    predicting at the length a model fine-tuned at `max_length` would (`prediction_max_length`)."""
    from textclf.serve.classifier import predict_probabilities
    from textclf.train.modeling import build_classifier, load_tokenizer, prediction_max_length

    model = build_classifier(base_model, label_map, "full", None, False, seed)
    tokenizer = load_tokenizer(base_model)
    length = prediction_max_length(model, tokenizer, max_length, predict_max_length)
    probabilities = predict_probabilities(
        model, tokenizer, clean_texts(test[TEXT].tolist(), cleaning), length, truncation=truncation
    )
    return classification_metrics(np.asarray(label_map.encode(test[LABEL])), probabilities, label_map.labels)
