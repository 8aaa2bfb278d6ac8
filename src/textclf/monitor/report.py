"""Drift reports: an Evidently report comparing a window of predictions with a model version's reference.

The checks cover what a text classifier's inputs and outputs can drift in: text descriptors (length, word
count, out-of-vocabulary rate, share of non-letters), the model's own sentence embeddings (a domain
classifier's ROC AUC), the predicted label distribution and the confidence; with feedback labels, the
classification quality too. Each result is read from the report's JSON by the id of the metric that produced
it, never by position, and reduced to named `CheckScore`s for the decision (`textclf.monitor.decision.decide`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from textclf.monitor.decision import CheckScore
from textclf.monitor.descriptors import DESCRIPTORS, text_descriptors

TEXT, PREDICTED_LABEL, SCORE, TRUE_LABEL = "text", "predicted_label", "score", "label"
EMBEDDING_CHECK = "embedding"
EMBEDDING_MIN_TEXTS = 31
"""Evidently's embedding report maps both sides' sampled embeddings to 2-D with scikit-learn's t-SNE at its default
perplexity, 30, which must be below the number of texts (evidently legacy/metrics/data_drift/embeddings_drift.py,
`TSNE(n_components=2)`); with fewer the check is left out, saying so, instead of failing the whole check."""
EMBEDDING_COLUMN_PREFIX = "embedding_"


Embedder = Callable[[Sequence[str]], np.ndarray]


# Evidently's column tests that return a p-value (drift below the threshold); the others are distances.
P_VALUE_METHODS = frozenset(
    {"ks", "chisquare", "z", "fisher_exact", "g_test", "mannw", "t_test", "anderson", "cramer_von_mises"}
)


class DriftReportSettings(BaseModel):
    """Which test each check uses and the score that means drift: the monitor's defaults, stated here once.

    The defaults are tests, not distances: a distance threshold means different things at different sample
    sizes (two 300-text samples of the same movie reviews differ by a normed Wasserstein distance of up to
    0.2 in length, another domain by 0.5 to 2), while a p-value threshold holds its false-alarm rate at any
    window and reference size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    descriptor_method: str = Field("ks", description="Evidently test for text descriptors (ks, wasserstein, ...)")
    descriptor_threshold: float = Field(0.01, gt=0, description="drift below this p-value (or above a distance)")
    label_method: str = Field("chisquare", description="Evidently test for the predicted-label distribution")
    label_threshold: float = Field(0.01, gt=0, description="drift below this p-value (or above a distance)")
    score_method: str = Field("ks", description="Evidently test for the confidence distribution")
    score_threshold: float = Field(0.01, gt=0, description="drift below this p-value (or above a distance)")
    embedding_threshold: float = Field(
        0.6, gt=0.5, le=1, description="ROC AUC of a classifier telling reference from current embeddings"
    )
    embedding_sample: int = Field(
        500, ge=20, description="texts per side that are embedded: the forward pass is what costs time"
    )
    embedding_max_tokens: int = Field(
        64, ge=8, description="tokens of each text's beginning that are embedded (half the time of 128 on long texts)"
    )
    embedding_pca_components: int = Field(20, ge=1, description="PCA components the embedding test keeps")
    seed: int = Field(0, description="seed of the embedded sample")


def _side(method: str) -> Literal["above", "below"]:
    return "below" if method in P_VALUE_METHODS else "above"


@dataclass
class DriftReport:
    checks: list[CheckScore]
    quality: dict[str, Any] | None
    """Accuracy and per-class F1 of the labelled part of the window, with the reference's for comparison."""
    sections: dict[str, str]
    """Evidently's standalone HTML report per part, by title."""
    snapshots: dict[str, Any]
    """Evidently's JSON snapshot per part."""
    sizes: dict[str, int] = field(default_factory=dict)
    embedded: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """Per side ("reference", "current"): the positions of the texts the embedding check embedded, and their
    vectors; what the drift groups are clustered from (`textclf.monitor.groups`)."""

    def scores(self) -> dict[str, dict[str, Any]]:
        return {check.name: check.to_dict() for check in self.checks}


def embedded_positions(texts: int, sample: int, seed: int) -> np.ndarray:
    """Which of a side's texts the embedding check embeds (a seeded sample, in the side's order)."""
    return np.sort(np.random.default_rng(seed).permutation(texts)[:sample])


def _embedding_frame(texts: Sequence[str], embedder: Embedder, sample: int, seed: int) -> pd.DataFrame:
    vectors = embedder([texts[i] for i in embedded_positions(len(texts), sample, seed)])
    return pd.DataFrame(vectors, columns=[f"{EMBEDDING_COLUMN_PREFIX}{i}" for i in range(vectors.shape[1])])


def _classification(labels: Sequence[str]) -> Any:
    from evidently.core.datasets import BinaryClassification, MulticlassClassification

    if len(labels) == 2:
        return BinaryClassification(target=TRUE_LABEL, prediction_labels=PREDICTED_LABEL, pos_label=labels[1])
    return MulticlassClassification(target=TRUE_LABEL, prediction_labels=PREDICTED_LABEL)


def _frame(window: pd.DataFrame, vocabulary: frozenset[str], predicted: bool, labelled: bool) -> pd.DataFrame:
    frame = text_descriptors(window[TEXT].tolist(), vocabulary)
    if predicted:
        frame[PREDICTED_LABEL] = window[PREDICTED_LABEL].astype(str).to_numpy()
        frame[SCORE] = window[SCORE].astype(float).to_numpy()
    if labelled:
        frame[TRUE_LABEL] = window[TRUE_LABEL].to_numpy()
    return frame


DriftMetric = tuple[Any, float, Literal["above", "below"]]
"""An Evidently metric, the score that means drift, and which side of it is drift."""


def _column_drift_metrics(settings: DriftReportSettings, predicted: bool) -> dict[str, DriftMetric]:
    from evidently.metrics import ValueDrift

    tests = {name: (settings.descriptor_method, settings.descriptor_threshold) for name in DESCRIPTORS}
    if predicted:
        tests[PREDICTED_LABEL] = (settings.label_method, settings.label_threshold)
        tests[SCORE] = (settings.score_method, settings.score_threshold)
    return {
        name: (ValueDrift(column=name, method=method), threshold, _side(method))
        for name, (method, threshold) in tests.items()
    }


def _run_window_report(
    reference_frame: pd.DataFrame,
    current_frame: pd.DataFrame,
    metrics: list[Any],
    labels: Sequence[str],
    predicted: bool,
    with_quality: bool,
) -> Any:
    """One Evidently report over the descriptors, the predictions and (with feedback) the quality."""
    from evidently import DataDefinition, Dataset, Report
    from sklearn.exceptions import UndefinedMetricWarning

    definition = DataDefinition(
        numerical_columns=[*DESCRIPTORS, *([SCORE] if predicted else [])],
        categorical_columns=[*([PREDICTED_LABEL] if predicted else []), *([TRUE_LABEL] if with_quality else [])],
        classification=[_classification(labels)] if with_quality else None,
    )
    with warnings.catch_warnings():
        # Unlabelled rows leave the target empty on purpose; Evidently scores the labelled ones and says so.
        warnings.filterwarnings("ignore", message="Target column .* contains 'None' values")
        warnings.filterwarnings("ignore", category=UndefinedMetricWarning)
        return Report(metrics).run(
            current_data=Dataset.from_pandas(current_frame, data_definition=definition),
            reference_data=Dataset.from_pandas(reference_frame, data_definition=definition),
        )


def _run_embedding_report(
    reference_vectors: pd.DataFrame, current_vectors: pd.DataFrame, settings: DriftReportSettings
) -> tuple[DriftMetric, Any]:
    """A report of its own: only the sampled texts have embeddings, and the test needs no gaps."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift
    from evidently.metrics.embeddings import ModelDriftMethod

    # PCA cannot keep more components than the smaller side has texts (or the embedding has dimensions).
    components = min(
        settings.embedding_pca_components, len(reference_vectors), len(current_vectors), reference_vectors.shape[1]
    )
    method = ModelDriftMethod(threshold=settings.embedding_threshold, pca_components=components or None)
    metric = EmbeddingsDrift(embeddings_name=EMBEDDING_CHECK, drift_method=method)
    definition = DataDefinition(embeddings={EMBEDDING_CHECK: list(reference_vectors.columns)})
    snapshot = Report([metric]).run(
        current_data=Dataset.from_pandas(current_vectors, data_definition=definition),
        reference_data=Dataset.from_pandas(reference_vectors, data_definition=definition),
    )
    return (metric, settings.embedding_threshold, "above"), snapshot


def _quality(
    reference: pd.DataFrame, current: pd.DataFrame, values: dict[str, Any], accuracy: Any, per_class_f1: Any
) -> dict[str, Any]:
    labelled = current[current[TRUE_LABEL].notna()]
    return {
        "labelled": len(labelled),
        "accuracy": float(values[accuracy.get_metric_id()]),
        "per_class_f1": {str(k): float(v) for k, v in values[per_class_f1.get_metric_id()].items()},
        "reference_accuracy": float((reference[TRUE_LABEL] == reference[PREDICTED_LABEL]).mean()),
    }


def build_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    labels: Sequence[str],
    vocabulary: frozenset[str],
    embedder: Embedder | None,
    settings: DriftReportSettings | None = None,
    reference_embeddings: pd.DataFrame | None = None,
) -> DriftReport:
    """Compare `current` (text, predicted_label, score, and `label` where feedback exists) with `reference`
    (the same columns; `label` is the validation split's truth). `embedder` maps texts to sentence
    embeddings; without it the embedding check is left out. `reference_embeddings` may be passed to reuse
    the reference side's embeddings across checks of one model version."""
    from evidently.metrics import Accuracy, F1ByLabel

    settings = settings or DriftReportSettings()
    if TRUE_LABEL in current.columns:
        current = current.assign(**{TRUE_LABEL: known_labels_only(current[TRUE_LABEL], labels)})
    predicted = all({PREDICTED_LABEL, SCORE} <= set(frame.columns) for frame in (reference, current))
    current_labelled = TRUE_LABEL in current.columns and current[TRUE_LABEL].notna().any()
    reference_labelled = TRUE_LABEL in reference.columns and reference[TRUE_LABEL].notna().any()
    with_quality = bool(predicted and current_labelled and reference_labelled)
    drift_metrics = _column_drift_metrics(settings, predicted)
    accuracy, per_class_f1 = Accuracy(), F1ByLabel()
    window_snapshot = _run_window_report(
        _frame(reference, vocabulary, predicted, with_quality),
        _frame(current, vocabulary, predicted, with_quality),
        [metric for metric, _, _ in drift_metrics.values()] + ([accuracy, per_class_f1] if with_quality else []),
        labels,
        predicted,
        with_quality,
    )
    documents = {"window": window_snapshot.dict()}
    embedded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sections = {"Text descriptors, predictions and quality": window_snapshot.get_html_str(as_iframe=False)}
    if embedder is not None:
        if reference_embeddings is None:
            reference_embeddings = embed_reference(reference, embedder, settings)
        current_vectors = _embedding_frame(current[TEXT].tolist(), embedder, settings.embedding_sample, settings.seed)
        texts = len(reference_embeddings) + len(current_vectors)
        if texts < EMBEDDING_MIN_TEXTS:
            sections["Sentence embeddings"] = (
                f"<p>Left out: {texts} texts between the reference and the window; the embedding check needs "
                f"{EMBEDDING_MIN_TEXTS}.</p>"
            )
        else:
            drift_metrics[EMBEDDING_CHECK], embedding_snapshot = _run_embedding_report(
                reference_embeddings, current_vectors, settings
            )
            documents["embedding"] = embedding_snapshot.dict()
            sample, seed = settings.embedding_sample, settings.seed
            embedded = {
                "reference": (embedded_positions(len(reference), sample, seed), reference_embeddings.to_numpy()),
                "current": (embedded_positions(len(current), sample, seed), current_vectors.to_numpy()),
            }
            sections["Sentence embeddings"] = embedding_snapshot.get_html_str(as_iframe=False)
    values = {result["id"]: result["value"] for document in documents.values() for result in document["metrics"]}
    return DriftReport(
        checks=[
            CheckScore(name, float(values[metric.get_metric_id()]), threshold, side)
            for name, (metric, threshold, side) in drift_metrics.items()
        ],
        quality=_quality(reference, current, values, accuracy, per_class_f1) if with_quality else None,
        sections=sections,
        snapshots=_plain(documents),
        sizes={"reference": len(reference), "current": len(current)},
        embedded=embedded,
    )


def known_labels_only(labels: pd.Series, classes: Sequence[str]) -> pd.Series:
    """Feedback naming no class of the model (a typo, a retired class) cannot be scored against it: such a
    row counts as unlabelled. The one rule for live accuracy, the drift report and the monitor's /quality."""
    return labels.where(labels.isin(list(classes)))


def embed_reference(reference: pd.DataFrame, embedder: Embedder, settings: DriftReportSettings) -> pd.DataFrame:
    """The reference side's embedding sample, to compute once per model version."""
    return _embedding_frame(reference[TEXT].tolist(), embedder, settings.embedding_sample, settings.seed)


def _plain(value: Any) -> Any:
    """The snapshot as JSON-ready Python values (Evidently leaves numpy scalars in it)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
