"""Long texts reach the tokenizer as a prefix that encodes exactly as the whole text does at the model's
max_length, so a hostile text at the length limit costs milliseconds, not seconds."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.hostile import HOSTILE_SHAPES
from textclf.config import ServingConfig
from textclf.data.cleaning import CleaningConfig, clean_text
from textclf.data.preprocess import tokenizer_input
from textclf.train.modeling import PACKAGED_MINILM, resolve_base_model

pytestmark = pytest.mark.unit

MAX_TEXT_CHARS = ServingConfig.model_fields["max_text_chars"].default
MAX_LENGTH = 128
# Cleaning and tokenizing one text at the length limit; the slowest shape (U+FDFA, which NFKC turns into 18
# characters) takes ~0.16 s here, nearly all of it in NFKC.
TEXT_BUDGET_SECONDS = 0.5


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_base_model(PACKAGED_MINILM))


def encode(tokenizer, text: str) -> tuple[list[int], bool]:
    encoded = tokenizer([text], truncation=True, max_length=MAX_LENGTH)
    return encoded["input_ids"][0], bool(encoded.encodings[0].overflowing)


@pytest.mark.parametrize("shape", sorted(HOSTILE_SHAPES))
def test_a_hostile_text_at_the_limit_is_cleaned_and_tokenized_quickly_and_exactly(tokenizer, shape: str) -> None:
    cleaned = clean_text(HOSTILE_SHAPES[shape](MAX_TEXT_CHARS), CleaningConfig())
    started = time.perf_counter()
    bounded = tokenizer_input(tokenizer, cleaned, MAX_LENGTH)
    encoded = encode(tokenizer, bounded)
    assert time.perf_counter() - started < TEXT_BUDGET_SECONDS
    assert encoded == encode(tokenizer, cleaned)


words = st.sampled_from(["film", "great", "不", "好", "<b>", "&amp;", "x" * 150, "\U0001f600", "!", "a-b", "naïve"])
separators = st.sampled_from([" ", "", "  ", "\n", ", "])
long_texts = st.lists(st.tuples(words | st.text(min_size=1, max_size=12), separators), min_size=1, max_size=40).map(
    lambda pairs: "".join(word + separator for word, separator in pairs)
)


@settings(max_examples=150, deadline=None)
@given(unit=long_texts, repeats=st.integers(1, 400))
def test_the_prefix_encodes_as_the_whole_text(tokenizer, unit: str, repeats: int) -> None:
    text = clean_text((unit * repeats)[:MAX_TEXT_CHARS], CleaningConfig())
    assert encode(tokenizer, tokenizer_input(tokenizer, text, MAX_LENGTH)) == encode(tokenizer, text)
