"""Head+tail truncation: a long text keeps its first quarter and last three quarters of tokens, exactly as
the whole text tokenizes, in training and at serving alike, and costs milliseconds at the length limit."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.hostile import HOSTILE_SHAPES
from textclf.config import ServingConfig
from textclf.data.cleaning import CleaningConfig, clean_text
from textclf.data.preprocess import (
    HEAD_TAIL_HEAD_SHARE,
    LabelMap,
    encode_texts,
    prepare_split,
    special_tokens_around,
)
from textclf.train.modeling import PACKAGED_MINILM, resolve_base_model

pytestmark = pytest.mark.unit

MAX_LENGTH = 128
MAX_TEXT_CHARS = ServingConfig.model_fields["max_text_chars"].default
TEXT_BUDGET_SECONDS = 0.5  # as for head truncation (test_tokenizer_input.py): one text at the limit


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_base_model(PACKAGED_MINILM))


def expected_head_tail(tokenizer, text: str, max_length: int) -> list[int]:
    """From the whole text's tokens, the slow and obvious way."""
    whole = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    before, after = special_tokens_around(tokenizer)
    kept = max_length - len(before) - len(after)
    head = round(kept * HEAD_TAIL_HEAD_SHARE)
    if len(whole) <= kept:
        return [*before, *whole, *after]
    return [*before, *whole[:head], *whole[len(whole) - (kept - head) :], *after]


def test_a_long_text_keeps_its_first_quarter_and_last_three_quarters(tokenizer) -> None:
    text = " ".join(f"w{index}" for index in range(400))
    [ids], [truncated] = encode_texts(tokenizer, [text], MAX_LENGTH, "head_tail")
    assert truncated
    assert len(ids) == MAX_LENGTH
    assert ids == expected_head_tail(tokenizer, text, MAX_LENGTH)
    words = tokenizer.decode(ids, skip_special_tokens=True).split()
    assert words[0] == "w0" and words[-1] == "w399"
    [head_ids], _ = encode_texts(tokenizer, [text], MAX_LENGTH, "head")
    assert tokenizer.decode(head_ids, skip_special_tokens=True).split()[-1] != "w399"


def test_short_texts_encode_the_same_either_way(tokenizer) -> None:
    texts = ["a fine film", "", "x " * 60]
    assert encode_texts(tokenizer, texts, MAX_LENGTH, "head_tail") == encode_texts(tokenizer, texts, MAX_LENGTH, "head")


def test_an_unknown_truncation_is_refused(tokenizer) -> None:
    with pytest.raises(ValueError, match="'head' or 'head_tail'"):
        encode_texts(tokenizer, ["a"], MAX_LENGTH, "middle")  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", sorted(HOSTILE_SHAPES))
def test_a_hostile_text_at_the_limit_is_cut_quickly_and_exactly(tokenizer, shape: str) -> None:
    cleaned = clean_text(HOSTILE_SHAPES[shape](MAX_TEXT_CHARS), CleaningConfig())
    started = time.perf_counter()
    [ids], _ = encode_texts(tokenizer, [cleaned], MAX_LENGTH, "head_tail")
    assert time.perf_counter() - started < TEXT_BUDGET_SECONDS
    assert ids == expected_head_tail(tokenizer, cleaned, MAX_LENGTH)


words = st.sampled_from(["film", "great", "不", "好", "<b>", "&amp;", "x" * 150, "\U0001f600", "!", "a-b", "naïve"])
separators = st.sampled_from([" ", "", "  ", "\n", ", "])
long_texts = st.lists(st.tuples(words | st.text(min_size=1, max_size=12), separators), min_size=1, max_size=40).map(
    lambda pairs: "".join(word + separator for word, separator in pairs)
)


@settings(max_examples=150, deadline=None)
@given(unit=long_texts, repeats=st.integers(1, 400), max_length=st.sampled_from([16, 128, 512]))
def test_head_and_tail_are_the_whole_texts_tokens(tokenizer, unit: str, repeats: int, max_length: int) -> None:
    text = clean_text((unit * repeats)[:MAX_TEXT_CHARS], CleaningConfig())
    [ids], _ = encode_texts(tokenizer, [text], max_length, "head_tail")
    assert ids == expected_head_tail(tokenizer, text, max_length)


def test_training_splits_are_cut_as_asked(tokenizer) -> None:
    import pandas as pd

    long_text = " ".join(f"w{index}" for index in range(300))
    frame = pd.DataFrame({"text": [long_text, "short one"], "label": ["a", "b"]})
    prepared = prepare_split(frame, CleaningConfig(), tokenizer, LabelMap(("a", "b")), 32, "head_tail")
    assert prepared.truncated == 1
    assert prepared.frame["input_ids"][0] == expected_head_tail(tokenizer, long_text, 32)


def test_the_model_directory_records_the_cut_and_serving_repeats_it(step_inputs: dict, tmp_path: Path) -> None:
    """The fixture run trained with head_tail: its directory says so, and only then does a long text's
    ending change what the served model computes (its sentence embedding: the tiny model's probabilities
    barely depend on the text)."""
    import shutil

    from textclf.serve.classifier import TextClassifier

    metadata = json.loads((step_inputs["model"] / "textclf.json").read_text())
    assert metadata["truncation"] == "head_tail"
    assert json.loads(step_inputs["preprocessing"].read_text())["truncation"] == "head_tail"
    start = " ".join(f"w{index}" for index in range(200))
    texts = [f"{start} a wonderful moving film", f"{start} a dreadful boring mess"]
    served = TextClassifier.load(step_inputs["model"]).predict(texts, embeddings=True)
    assert served.truncated.all()
    assert abs(served.embeddings[0] - served.embeddings[1]).max() > 1e-4

    head_only = tmp_path / "head-only"
    shutil.copytree(step_inputs["model"], head_only)
    (head_only / "textclf.json").write_text(json.dumps({**metadata, "truncation": "head"}))
    served_head = TextClassifier.load(head_only).predict(texts, embeddings=True)
    assert abs(served_head.embeddings[0] - served_head.embeddings[1]).max() == 0


def test_directories_from_before_truncation_and_calibration_load_as_head_and_unscaled(
    step_inputs: dict, tmp_path: Path
) -> None:
    import shutil

    from textclf.registry.model_dir import ModelDirectory

    old = tmp_path / "old"
    shutil.copytree(step_inputs["model"], old)
    metadata = json.loads((old / "textclf.json").read_text())
    del metadata["truncation"], metadata["temperature"]
    (old / "textclf.json").write_text(json.dumps(metadata))
    assert ModelDirectory(old).metadata().truncation == "head"
    assert ModelDirectory(old).metadata().temperature == 1.0
