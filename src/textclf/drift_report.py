"""Drift reports: an Evidently report comparing a window of predictions with a model version's reference.

The checks cover what a text classifier's inputs and outputs can drift in: text descriptors (length, word
count, out-of-vocabulary rate, share of non-letters), the model's own sentence embeddings (a domain
classifier's ROC AUC), the predicted label distribution and the confidence; with feedback labels, the
classification quality too. Each result is read from the report's JSON by the id of the metric that produced
it, never by position, and reduced to named `CheckScore`s for the decision (`textclf.drift.decide`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from textclf.drift import CheckScore

TEXT, PREDICTED_LABEL, SCORE, TRUE_LABEL = "text", "predicted_label", "score", "label"
DESCRIPTORS = ("length_chars", "word_count", "oov_share", "non_letter_share")
EMBEDDING_CHECK = "embedding"
EMBEDDING_COLUMN_PREFIX = "embedding_"

_WORD = re.compile(r"[^\W\d_]+")
_SPACE = re.compile(r"\s")

Embedder = Callable[[Sequence[str]], np.ndarray]


# Evidently's column tests that return a p-value (drift below the threshold); the others are distances.
P_VALUE_METHODS = frozenset(
    {"ks", "chisquare", "z", "fisher_exact", "g_test", "mannw", "t_test", "anderson", "cramer_von_mises"}
)


@dataclass(frozen=True)
class DriftReportSettings:
    """Which test each check uses and the score that means drift.

    The defaults are tests, not distances: a distance threshold means different things at different sample
    sizes (two 300-text samples of the same movie reviews differ by a normed Wasserstein distance of up to
    0.2 in length, another domain by 0.5 to 2), while a p-value threshold holds its false-alarm rate at any
    window and reference size."""

    descriptor_method: str = "ks"
    descriptor_threshold: float = 0.01
    label_method: str = "chisquare"
    label_threshold: float = 0.01
    score_method: str = "ks"
    score_threshold: float = 0.01
    embedding_threshold: float = 0.6
    """ROC AUC of a classifier telling reference from current embeddings; 0.5 = indistinguishable."""
    embedding_sample: int = 500
    """Texts per side that are embedded: the forward pass, not the test, is what costs time."""
    embedding_pca_components: int = 20
    seed: int = 0


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

    def scores(self) -> dict[str, dict[str, Any]]:
        return {check.name: check.to_dict() for check in self.checks}


def text_descriptors(texts: Sequence[str], vocabulary: frozenset[str]) -> pd.DataFrame:
    """Per text: characters, words, the share of words the tokenizer's vocabulary lacks as whole words,
    and the share of non-space characters that are not letters (digits, punctuation, emoji, markup)."""
    rows = []
    for text in texts:
        words = _WORD.findall(text)
        visible = len(text) - len(_SPACE.findall(text))
        letters = sum(map(len, words))
        rows.append(
            (
                len(text),
                len(text.split()),
                sum(word.lower() not in vocabulary for word in words) / len(words) if words else 0.0,
                (visible - letters) / visible if visible else 0.0,
            )
        )
    return pd.DataFrame(rows, columns=list(DESCRIPTORS), dtype=float)


def whole_word_vocabulary(tokenizer_vocabulary: dict[str, int]) -> frozenset[str]:
    """The words a WordPiece/BPE vocabulary holds whole (no continuation marks, letters only)."""
    words = set()
    for token in tokenizer_vocabulary:
        word = token.removeprefix("Ġ").removeprefix("▁").lower()
        if word.isalpha() and not token.startswith("##"):
            words.add(word)
    return frozenset(words)


def _embedding_frame(texts: Sequence[str], embedder: Embedder, sample: int, seed: int) -> pd.DataFrame:
    chosen = np.random.default_rng(seed).permutation(len(texts))[:sample]
    vectors = embedder([texts[i] for i in sorted(chosen)])
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


def build_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    labels: Sequence[str],
    vocabulary: frozenset[str],
    embedder: Embedder | None,
    settings: DriftReportSettings = DriftReportSettings(),
    reference_embeddings: pd.DataFrame | None = None,
) -> DriftReport:
    """Compare `current` (text, predicted_label, score, and `label` where feedback exists) with `reference`
    (the same columns; `label` is the validation split's truth). `embedder` maps texts to sentence
    embeddings; without it the embedding check is left out. `reference_embeddings` may be passed to reuse
    the reference side's embeddings across checks of one model version."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import Accuracy, EmbeddingsDrift, F1ByLabel, ValueDrift
    from evidently.metrics.embeddings import ModelDriftMethod
    from sklearn.exceptions import UndefinedMetricWarning

    if TRUE_LABEL in current.columns:
        # A label that is no class of the model cannot be scored; the row counts as unlabelled.
        current = current.assign(**{TRUE_LABEL: current[TRUE_LABEL].where(current[TRUE_LABEL].isin(labels))})
    predicted = all({PREDICTED_LABEL, SCORE} <= set(frame.columns) for frame in (reference, current))
    current_labelled = TRUE_LABEL in current.columns and current[TRUE_LABEL].notna().any()
    reference_labelled = TRUE_LABEL in reference.columns and reference[TRUE_LABEL].notna().any()
    with_quality = bool(predicted and current_labelled and reference_labelled)
    reference_frame = _frame(reference, vocabulary, predicted, with_quality)
    current_frame = _frame(current, vocabulary, predicted, with_quality)
    drift_metrics: dict[str, tuple[Any, float, Literal["above", "below"]]] = {
        name: (
            ValueDrift(column=name, method=settings.descriptor_method),
            settings.descriptor_threshold,
            _side(settings.descriptor_method),
        )
        for name in DESCRIPTORS
    }
    if predicted:
        drift_metrics[PREDICTED_LABEL] = (
            ValueDrift(column=PREDICTED_LABEL, method=settings.label_method),
            settings.label_threshold,
            _side(settings.label_method),
        )
        drift_metrics[SCORE] = (
            ValueDrift(column=SCORE, method=settings.score_method),
            settings.score_threshold,
            _side(settings.score_method),
        )
    embeddings: dict[str, list[str]] = {}
    if embedder is not None:
        ref_vectors = reference_embeddings
        if ref_vectors is None:
            ref_vectors = _embedding_frame(reference[TEXT].tolist(), embedder, settings.embedding_sample, settings.seed)
        cur_vectors = _embedding_frame(current[TEXT].tolist(), embedder, settings.embedding_sample, settings.seed)
        embeddings[EMBEDDING_CHECK] = list(ref_vectors.columns)
        # PCA cannot keep more components than the smaller side has texts (or the embedding has dimensions).
        components = min(settings.embedding_pca_components, len(ref_vectors), len(cur_vectors), ref_vectors.shape[1])
        method = ModelDriftMethod(threshold=settings.embedding_threshold, pca_components=components or None)
        drift_metrics[EMBEDDING_CHECK] = (
            EmbeddingsDrift(embeddings_name=EMBEDDING_CHECK, drift_method=method),
            settings.embedding_threshold,
            "above",
        )
    quality_metrics = {"accuracy": Accuracy(), "per_class_f1": F1ByLabel()} if with_quality else {}
    categorical = [*([PREDICTED_LABEL] if predicted else []), *([TRUE_LABEL] if with_quality else [])]
    definition = DataDefinition(
        numerical_columns=[*DESCRIPTORS, *([SCORE] if predicted else [])],
        categorical_columns=categorical,
        classification=[_classification(labels)] if with_quality else None,
    )
    metrics = [metric for name, (metric, _, _) in drift_metrics.items() if name != EMBEDDING_CHECK]
    with warnings.catch_warnings():
        # Unlabelled rows leave the target empty on purpose; Evidently scores the labelled ones and says so.
        warnings.filterwarnings("ignore", message="Target column .* contains 'None' values")
        warnings.filterwarnings("ignore", category=UndefinedMetricWarning)
        window_snapshot = Report([*metrics, *quality_metrics.values()]).run(
            current_data=Dataset.from_pandas(current_frame, data_definition=definition),
            reference_data=Dataset.from_pandas(reference_frame, data_definition=definition),
        )
    documents = {"window": window_snapshot.dict()}
    sections = {"Text descriptors, predictions and quality": window_snapshot.get_html_str(as_iframe=False)}
    if embedder is not None:
        # A report of its own: only the sampled texts have embeddings, and the test needs no gaps.
        embedding_definition = DataDefinition(embeddings=embeddings)
        embedding_snapshot = Report([drift_metrics[EMBEDDING_CHECK][0]]).run(
            current_data=Dataset.from_pandas(cur_vectors, data_definition=embedding_definition),
            reference_data=Dataset.from_pandas(ref_vectors, data_definition=embedding_definition),
        )
        documents["embedding"] = embedding_snapshot.dict()
        sections["Sentence embeddings"] = embedding_snapshot.get_html_str(as_iframe=False)
    values = {result["id"]: result["value"] for document in documents.values() for result in document["metrics"]}
    checks = [
        CheckScore(name, float(values[metric.get_metric_id()]), threshold, side)
        for name, (metric, threshold, side) in drift_metrics.items()
    ]
    quality = None
    if with_quality:
        labelled = current[current[TRUE_LABEL].notna()]
        reference_accuracy = float((reference[TRUE_LABEL] == reference[PREDICTED_LABEL]).mean())
        quality = {
            "labelled": len(labelled),
            "accuracy": float(values[quality_metrics["accuracy"].get_metric_id()]),
            "per_class_f1": {
                str(k): float(v) for k, v in values[quality_metrics["per_class_f1"].get_metric_id()].items()
            },
            "reference_accuracy": reference_accuracy,
        }
    return DriftReport(
        checks=checks,
        quality=quality,
        sections=sections,
        snapshots=_plain(documents),
        sizes={"reference": len(reference), "current": len(current)},
    )


def report_page(title: str, decision: dict[str, Any], report: DriftReport) -> str:
    """One HTML page per check: the decision and its scores on top, then each Evidently report."""
    import html

    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{score['score']:.4g}</td><td>{score['threshold']:.4g}</td>"
        f"<td>{'drift' if score['drifted'] else 'ok'}</td></tr>"
        for name, score in decision["scores"].items()
    )
    quality = ""
    if report.quality:
        f1 = ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in report.quality["per_class_f1"].items())
        quality = (
            f"<p>Feedback on {report.quality['labelled']} predictions: accuracy {report.quality['accuracy']:.3f} "
            f"(reference {report.quality['reference_accuracy']:.3f}); F1 by class: {f1}</p>"
        )
    frames = "".join(
        f"<h2>{html.escape(section)}</h2>"
        f'<iframe style="width:100%;height:900px;border:0" srcdoc="{html.escape(body, quote=True)}"></iframe>'
        for section, body in report.sections.items()
    )
    window = decision["window"]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}: {html.escape(decision['decision'])}</h1>"
        f"<p>{html.escape(decision['reason'])}</p>"
        f"<p>Window: {window['size']} predictions of model version {html.escape(str(window['model_version']))}, "
        f"{html.escape(str(window['start']))} to {html.escape(str(window['end']))}; reference: "
        f"{report.sizes.get('reference', 0)} validation texts.</p>{quality}"
        f"<table border='1' cellpadding='4'><tr><th>check</th><th>score</th><th>threshold</th><th></th></tr>"
        f"{rows}</table>{frames}</body></html>"
    )


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
