"""Explanations by occlusion: one attribution per word of the text as sent, the arithmetic of deleting a word,
faithfulness on the fixture model, hostile texts at the explain limits, and `textclf explain`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.support.hostile import HOSTILE_SHAPES
from textclf.serve.explain import ExplanationPlan, explain_texts, without_span, word_spans

pytestmark = pytest.mark.unit


def test_words_are_the_texts_whitespace_separated_pieces_at_their_offsets() -> None:
    text = "  Not  bad,\tat all!\n😀 café "
    spans = word_spans(text)
    assert [text[start:end] for start, end in spans] == ["Not", "bad,", "at", "all!", "😀", "café"]
    assert without_span(text, *spans[0]) == "bad,\tat all!\n😀 café "
    assert without_span(text, *spans[1]) == "  Not at all!\n😀 café "
    assert without_span(text, *spans[-1]) == "  Not  bad,\tat all!\n😀"
    assert without_span("alone", 0, 5) == ""


def test_an_attribution_is_how_far_the_labels_probability_falls_without_the_word() -> None:
    """A fake model whose positive probability is the share of the word "good" in the text."""

    def probabilities_of(texts: list[str]) -> np.ndarray:
        positive = np.array([text.split().count("good") / max(len(text.split()), 1) for text in texts])
        return np.stack([1 - positive, positive], axis=1)

    [explanation] = explain_texts(probabilities_of, ["negative", "positive"], ["bad good good good"])
    assert explanation.label == "positive" and explanation.score == pytest.approx(0.75)
    attributions = {word.word: word.attribution for word in explanation.words}
    assert attributions["bad"] == pytest.approx(0.75 - 1.0)  # deleting "bad" raises the positive probability
    assert explanation.words[1].attribution == pytest.approx(0.75 - 2 / 3)
    plan = ExplanationPlan.for_text("bad good")
    assert plan.texts == ["bad good", "good", "bad"]


def test_deleting_the_top_attributed_words_lowers_the_score_more_than_deleting_random_ones(step_inputs: dict) -> None:
    """Faithfulness on the fixture model and its test split: deleting the k most positively attributed words
    lowers the explained label's probability more, on average, than deleting k words at random."""
    import pandas as pd

    from textclf.serve.classifier import TextClassifier

    classifier = TextClassifier.load(step_inputs["model"])
    texts = [text for text in pd.read_parquet(step_inputs["raw"]["test"])["text"] if len(text.split()) >= 6][:40]
    rng = np.random.default_rng(0)
    top_drops, random_drops = [], []
    for explanation, text in zip(classifier.explain(texts), texts, strict=True):
        k = 2
        explained = classifier.labels.index(explanation.label)
        order = np.argsort([-word.attribution for word in explanation.words])
        chosen = rng.choice(len(explanation.words), size=k, replace=False)
        variants = [delete_words(text, explanation, order[:k]), delete_words(text, explanation, chosen)]
        after = classifier.predict(variants).probabilities[:, explained]
        top_drops.append(explanation.score - after[0])
        random_drops.append(explanation.score - after[1])
    assert np.mean(top_drops) > np.mean(random_drops)


def delete_words(text: str, explanation, indices) -> str:
    for index in sorted(indices, key=lambda i: -explanation.words[i].start):
        word = explanation.words[index]
        text = without_span(text, word.start, word.end)
    return text


@pytest.mark.parametrize("shape", ["short-words", "one-long-word", "astral-emoji", "tags", "nfkc-expanding"])
def test_a_hostile_text_at_the_explain_limits_is_explained_in_bounded_time(step_inputs: dict, shape: str) -> None:
    """5,000 characters (the default `max_explain_chars`), cut to at most 300 words (`max_explain_words`)."""
    from textclf.config import ServingConfig
    from textclf.serve.classifier import TextClassifier

    limits = ServingConfig()
    text = HOSTILE_SHAPES[shape](limits.max_explain_chars)
    spans = word_spans(text)[: limits.max_explain_words]
    text = text[: spans[-1][1]] if spans else text
    classifier = TextClassifier.load(step_inputs["model"], backend="onnx-int8")
    started = time.perf_counter()
    [explanation] = classifier.explain([text])
    assert time.perf_counter() - started < 30
    assert len(explanation.words) == len(word_spans(text)) <= limits.max_explain_words
    assert all(np.isfinite(word.attribution) for word in explanation.words)


def test_the_explain_command_prints_the_label_and_json_attributions(step_inputs: dict) -> None:
    from textclf.cli import app

    runner = CliRunner()
    model = str(step_inputs["model"])
    result = runner.invoke(app, ["explain", "--model", model, "--json", "A lovely film.", "Dull and long."])
    assert result.exit_code == 0, result.output
    documents = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [[word["word"] for word in document["words"]] for document in documents] == [
        ["A", "lovely", "film."],
        ["Dull", "and", "long."],
    ], f"stdout: {result.stdout[-3000:]!r}; stderr: {result.stderr[-3000:]!r}"
    coloured = runner.invoke(app, ["explain", "--model", model, "--backend", "onnx", "A lovely film."])
    assert coloured.exit_code == 0 and "A lovely film." in coloured.stdout
    missing = runner.invoke(app, ["explain", "--model", str(Path(model) / "nowhere"), "text"])
    assert missing.exit_code == 1 and "cannot explain" in missing.output
    wrong = runner.invoke(app, ["explain", "--model", model, "--backend", "gpu", "text"])
    assert wrong.exit_code == 2
