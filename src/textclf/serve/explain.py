"""Word attributions by occlusion: how much the explained label's probability falls when one word of the input
is deleted.

Why occlusion: it runs on whichever backend serves (ONNX int8 included, where gradients do not exist), costs one
batched forward pass of (words + 1) texts, and measures exactly what the faithfulness check asks (deleting the
top-attributed words lowers the label's score more than deleting random ones: `benchmarks/bench_explain.py`).
Words are the input's whitespace-separated pieces, so the attributions line up with what the person wrote,
whatever the tokenizer made of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from textclf.serve.inputs import InvalidTexts

EXPLAIN_METHOD = "occlusion"
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class WordAttribution:
    word: str
    start: int
    """Character offsets of the word in the text as sent."""
    end: int
    attribution: float
    """The explained label's probability with the whole text, less its probability without this word."""


@dataclass(frozen=True)
class Explanation:
    label: str
    score: float
    words: list[WordAttribution]
    method: str = EXPLAIN_METHOD

    def as_dict(self) -> dict:
        return asdict(self)


def word_spans(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in _WORD.finditer(text)]


@dataclass(frozen=True)
class ExplanationPlan:
    """The texts one explanation needs classified (the text itself, then the text without each word), and how
    their probabilities become the explanation. Serving runs `texts` in chunks between ordinary batches."""

    text: str
    spans: list[tuple[int, int]]

    @classmethod
    def for_text(cls, text: str) -> ExplanationPlan:
        return cls(text, word_spans(text))

    @property
    def texts(self) -> list[str]:
        return [self.text] + [without_span(self.text, start, end) for start, end in self.spans]

    def finish(self, probabilities: np.ndarray, labels: Sequence[str]) -> Explanation:
        """`probabilities`: one row per text of `texts`, in order."""
        explained = int(probabilities[0].argmax())
        score = float(probabilities[0, explained])
        drops = score - probabilities[1:, explained]
        return Explanation(
            label=labels[explained],
            score=score,
            words=[
                WordAttribution(self.text[start:end], start, end, float(drop))
                for (start, end), drop in zip(self.spans, drops, strict=True)
            ],
        )


def without_span(text: str, start: int, end: int) -> str:
    """The text with one word deleted, the whitespace around it merged into one gap."""
    before, after = text[:start].rstrip(), text[end:].lstrip()
    return f"{before} {after}" if before and after else before or after


@dataclass(frozen=True)
class ExplanationLimits:
    """How much one explanation request may ask (each word is a forward pass of its text); the defaults are
    `ServingConfig`'s."""

    max_texts: int
    max_chars: int
    max_words: int
    max_request_words: int

    def check(self, texts: Sequence[str]) -> None:
        """`InvalidTexts` saying what to send instead when the texts ask for more than these limits."""
        if len(texts) > self.max_texts:
            raise InvalidTexts(f"explain at most {self.max_texts} texts per request (got {len(texts)}): send fewer")
        total_words = 0
        for index, text in enumerate(texts):
            if len(text) > self.max_chars:
                raise InvalidTexts(
                    f"text {index} has {len(text)} characters; explanations take at most {self.max_chars}: "
                    "send a shorter text, or ask for a prediction without an explanation"
                )
            words = len(word_spans(text))
            if words > self.max_words:
                raise InvalidTexts(
                    f"text {index} has {words} words; explanations take at most {self.max_words}: "
                    "send a shorter text, or ask for a prediction without an explanation"
                )
            total_words += words
        if total_words > self.max_request_words:
            raise InvalidTexts(
                f"the texts have {total_words} words; one explanation request takes at most "
                f"{self.max_request_words} (each word is a forward pass): send fewer or shorter texts"
            )


@dataclass(frozen=True)
class ExplanationBatch:
    """The plans of several texts as one list of texts to classify, and the explanations from their
    probabilities: the one place the variants are laid out and read back, whoever classifies them."""

    plans: list[ExplanationPlan]

    @classmethod
    def for_texts(cls, texts: Sequence[str]) -> ExplanationBatch:
        return cls([ExplanationPlan.for_text(text) for text in texts])

    @property
    def texts(self) -> list[str]:
        return [variant for plan in self.plans for variant in plan.texts]

    def finish(self, probabilities: np.ndarray, labels: Sequence[str]) -> list[Explanation]:
        """`probabilities`: one row per text of `texts`, in order."""
        explanations, offset = [], 0
        for plan in self.plans:
            count = len(plan.spans) + 1
            explanations.append(plan.finish(probabilities[offset : offset + count], labels))
            offset += count
        return explanations


def explain_texts(
    probabilities_of: Callable[[list[str]], np.ndarray], labels: Sequence[str], texts: Sequence[str]
) -> list[Explanation]:
    """Explanations of raw texts, all their variants classified in one call of `probabilities_of`."""
    batch = ExplanationBatch.for_texts(texts)
    variants = batch.texts
    return batch.finish(probabilities_of(variants) if variants else np.zeros((0, len(labels))), labels)
