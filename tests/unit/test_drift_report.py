"""Drift reports: descriptors by hand, then Evidently reports read by metric id on a tiny model's outputs."""

from __future__ import annotations

import pandas as pd
import pytest

from textclf.monitor.descriptors import DESCRIPTORS, text_descriptors, whole_word_vocabulary
from textclf.monitor.report import EMBEDDING_CHECK, DriftReportSettings, build_drift_report
from textclf.serve.classifier import TextClassifier

pytestmark = pytest.mark.unit

VOCABULARY = frozenset({"a", "good", "film", "bad"})


def test_descriptors_measure_length_words_vocabulary_and_non_letters() -> None:
    frame = text_descriptors(["a good film", "zzyzx film!!", "", "42 :)"], VOCABULARY)
    assert list(frame.columns) == list(DESCRIPTORS)
    assert frame["length_chars"].tolist() == [11, 12, 0, 5]
    assert frame["word_count"].tolist() == [3, 2, 0, 2]
    assert frame["oov_share"].tolist() == [0.0, 0.5, 0.0, 0.0]
    assert frame["non_letter_share"].tolist() == pytest.approx([0.0, 2 / 11, 0.0, 1.0])


def test_whole_word_vocabulary_keeps_words_and_drops_pieces_and_symbols() -> None:
    vocabulary = whole_word_vocabulary({"film": 0, "##ing": 1, "[CLS]": 2, "Ġgood": 3, "42": 4, "Bad": 5})
    assert vocabulary == {"film", "good", "bad"}


@pytest.fixture(scope="module")
def classifier(step_inputs: dict) -> TextClassifier:
    return TextClassifier.load(step_inputs["model"])


def _window(classifier: TextClassifier, texts: list[str], labels: list[str | None] | None = None) -> pd.DataFrame:
    predictions = classifier.predict(texts)
    frame = pd.DataFrame({"text": texts, "predicted_label": predictions.labels, "score": predictions.scores})
    if labels is not None:
        frame["label"] = labels
    return frame


REVIEWS = [
    "a warm and funny film with a great cast",
    "dull, slow and far too long",
    "one of the best movies of the year",
    "the plot makes no sense at all",
    "beautifully shot and well acted",
    "i wanted my two hours back",
]
TWEETS = [
    "@jo lol this is sooo gr8 #winning 😂😂 http://t.co/x1",
    "ugh 2day sucks!!! #mondays @work >:(",
    "OMG!!! 100% luv it <3 <3 #blessed",
    "wtf @bus_co 45 min late AGAIN 😡😡😡",
]


def test_a_window_like_the_reference_drifts_in_no_check_and_a_new_domain_drifts_in_many(
    classifier: TextClassifier,
) -> None:
    labels = classifier.labels
    reference = _window(classifier, REVIEWS * 40, [labels[i % 2] for i in range(240)])
    vocabulary = whole_word_vocabulary(classifier.tokenizer.get_vocab())

    def embed(texts: list[str]):
        return classifier.predict(texts, embeddings=True).embeddings

    settings = DriftReportSettings(embedding_sample=200, embedding_pca_components=8)
    same = build_drift_report(reference, _window(classifier, REVIEWS * 30), labels, vocabulary, embed, settings)
    assert {check.name for check in same.checks} == {*DESCRIPTORS, "predicted_label", "score", EMBEDDING_CHECK}
    assert [check.name for check in same.checks if check.drifted] == []
    assert same.quality is None

    feedback = [labels[i % 2] if i % 3 == 0 else None for i in range(120)]
    shifted = build_drift_report(
        reference, _window(classifier, TWEETS * 30, feedback), labels, vocabulary, embed, settings
    )
    drifted = {check.name for check in shifted.checks if check.drifted}
    assert {"length_chars", "oov_share", "non_letter_share", EMBEDDING_CHECK} <= drifted
    assert shifted.quality is not None and shifted.quality["labelled"] == 40
    assert set(shifted.quality["per_class_f1"]) == set(labels)
    assert 0.0 <= shifted.quality["accuracy"] <= 1.0
    assert set(shifted.sections) == {"Text descriptors, predictions and quality", "Sentence embeddings"}
    assert all("</html>" in html.lower() for html in shifted.sections.values())
    assert {"window", "embedding"} == set(shifted.snapshots)


def test_without_an_embedder_the_embedding_check_is_left_out(classifier: TextClassifier) -> None:
    reference = _window(classifier, REVIEWS * 10)
    report = build_drift_report(reference, _window(classifier, TWEETS * 10), classifier.labels, VOCABULARY, None)
    assert EMBEDDING_CHECK not in {check.name for check in report.checks}
    assert set(report.snapshots) == {"window"}


def test_too_few_texts_for_the_embedding_report_leave_that_check_out_saying_why(classifier: TextClassifier) -> None:
    """A small reference and a small window (a lowered min_window_size): Evidently's t-SNE would raise, and the
    whole check answered 500."""
    from textclf.monitor.report import EMBEDDING_MIN_TEXTS

    reference, current = _window(classifier, REVIEWS + REVIEWS[:2]), _window(classifier, TWEETS[:3])

    def embed(texts: list[str]):
        return classifier.predict(texts, embeddings=True).embeddings

    report = build_drift_report(reference, current, classifier.labels, VOCABULARY, embed)
    assert EMBEDDING_CHECK not in {check.name for check in report.checks}
    assert "predicted_label" in {check.name for check in report.checks}
    assert (
        f"11 texts between the reference and the window; the embedding check needs {EMBEDDING_MIN_TEXTS}"
        in (report.sections["Sentence embeddings"])
    )
