"""Text descriptors a drift check compares: length in characters and words, the share of words the
tokenizer's vocabulary lacks as whole words, and the share of visible characters that are not letters."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

DESCRIPTORS = ("length_chars", "word_count", "oov_share", "non_letter_share")


_WORD = re.compile(r"[^\W\d_]+")


_SPACE = re.compile(r"\s")


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
