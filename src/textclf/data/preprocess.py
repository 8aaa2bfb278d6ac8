"""Preprocess: clean texts, map labels to ids, tokenize with the base model's tokenizer; what preprocessing
decided (labels, cleaning, base model, max length) for training, evaluation and serving to repeat."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from textclf.data.cleaning import CleaningConfig, clean_texts
from textclf.data.sources import LABEL, TEXT

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

LABEL_ID, INPUT_IDS, LENGTH = "label_id", "input_ids", "length"
Truncation = Literal["head", "head_tail"]
# head_tail keeps this share of a long text's tokens from its start and the rest from its end. Sun et al. (2019,
# "How to Fine-Tune BERT for Text Classification") found 128 head + 382 tail tokens of 512 best on IMDB: a
# review's verdict tends to come last.
HEAD_TAIL_HEAD_SHARE = 0.25
# What files written before the truncation was recorded (preprocessing.json, model directories) were cut with.
RECORDED_BEFORE_TRUNCATION: Truncation = "head"
# Tokens per text when a trained model predicts. Fine-tuning runs at `max_length` (128: four times cheaper than
# 512), but the encoder was pre-trained on up to 512 positions and reads a longer cut of the same text better: on
# 2,000 IMDB reviews a model fine-tuned on 128-token head+tail cuts scored 0.863 predicting at 128 tokens, 0.880
# at 256 and 0.8925 at 512 (averaging its logits over every 128-token window scored 0.890-0.895, for no gain over
# one 512-token pass). Texts within max_length cost the same either way.
PREDICT_MAX_LENGTH = 512
# What files written before the prediction length was recorded hold: 0, predict at max_length.
PREDICT_AT_TRAINING_LENGTH = 0


@dataclass(frozen=True)
class LabelMap:
    """Class names in id order; ids are positions, so the map is stable for the same set of classes."""

    labels: tuple[str, ...]

    @classmethod
    def from_labels(cls, labels: pd.Series | list[str]) -> LabelMap:
        return cls(tuple(sorted({str(label) for label in labels})))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: index for index, label in enumerate(self.labels)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    def encode(self, labels: pd.Series) -> list[int]:
        mapping = self.label2id
        unknown = sorted(set(labels) - set(mapping))
        if unknown:
            raise ValueError(f"label(s) {unknown} are not in the label map {list(self.labels)}")
        return [mapping[label] for label in labels]


@dataclass
class PreparedSplit:
    frame: pd.DataFrame
    emptied_by_cleaning: int
    truncated: int


# Characters of a long text handed to the tokenizer at first, per token of the model's max_length. Fast
# tokenizers read a whole text even when they truncate it: 100,000 characters of U+FDFA (1.8 million once
# NFKC-normalized) took 3 s here. 16 characters a token is several times what English or Chinese needs.
TOKENIZER_CHARS_PER_TOKEN = 16


def tokenizer_input(tokenizer: PreTrainedTokenizerBase, text: str, max_length: int) -> str:
    """The part of a cleaned text the tokenizer needs to encode it at `max_length`: the whole text, or, for a
    long one, a prefix that ends after a complete word and already holds more than `max_length` tokens.

    A fast tokenizer normalizes and splits text into words locally and encodes each word on its own, so the
    tokens of the words before the prefix's cut are the whole text's: the first `max_length` tokens agree, and
    the encoding still reports the truncation. The word the cut falls in is dropped (its tokens could differ).
    A prefix with fewer tokens (a few enormous words) gives way to the whole text."""
    budget = max_length * TOKENIZER_CHARS_PER_TOKEN
    if len(text) <= budget or not tokenizer.is_fast:
        return text
    encoding = tokenizer(
        text[:budget], add_special_tokens=False, truncation=False, return_offsets_mapping=True, verbose=False
    )
    word_ids = encoding.word_ids()
    if not word_ids or word_ids[-1] is None:
        return text
    complete_tokens = word_ids.index(word_ids[-1])  # the tokens before the last word's first
    if complete_tokens <= max_length:
        return text
    return text[: encoding["offset_mapping"][complete_tokens - 1][1]]


def tokenizer_suffix(tokenizer: PreTrainedTokenizerBase, text: str, max_length: int) -> str:
    """`tokenizer_input`'s mirror for the end of a text: a suffix that starts at a complete word and holds
    more than `max_length` tokens (the word the cut falls in is dropped; the tokens of the words after it are
    the whole text's), or the whole text. The window grows fourfold while it holds too few tokens (a few
    enormous words), so even then the tokenizer reads about what it needs, not the whole text."""
    window = max_length * TOKENIZER_CHARS_PER_TOKEN
    while tokenizer.is_fast and window < len(text):
        tail = text[-window:]
        encoding = tokenizer(
            tail, add_special_tokens=False, truncation=False, return_offsets_mapping=True, verbose=False
        )
        word_ids = encoding.word_ids()
        if word_ids and word_ids[0] is not None:
            first_complete = next((index for index, word in enumerate(word_ids) if word != word_ids[0]), len(word_ids))
            if len(word_ids) - first_complete > max_length:
                return tail[encoding["offset_mapping"][first_complete][0] :]
        window *= 4
    return text


def special_tokens_around(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one sequence ([CLS] … [SEP], <s> … </s>)."""
    content = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for start in range(len(full) - len(content) + 1):
        if full[start : start + len(content)] == content:
            return full[:start], full[start + len(content) :]
    raise ValueError(f"cannot locate the text between {type(tokenizer).__name__}'s special tokens")


def head_and_tail_ids(
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    head_encoding: list[int],
    max_length: int,
    special: tuple[list[int], list[int]],
) -> list[int]:
    """A long text's first and last tokens, `HEAD_TAIL_HEAD_SHARE` of them from the start, between the
    tokenizer's `special` tokens (`special_tokens_around`): `max_length` ids in all. `head_encoding` is the
    text's head-truncated encoding at `max_length`, whose first tokens are the head."""
    before, after = special
    kept = max_length - len(before) - len(after)
    head_count = round(kept * HEAD_TAIL_HEAD_SHARE)
    tail_count = kept - head_count
    head = head_encoding[len(before) : len(before) + head_count]
    # The suffix is longer than the model takes on purpose: verbose=False keeps the tokenizer from saying so.
    tail = tokenizer(tokenizer_suffix(tokenizer, text, max_length), add_special_tokens=False, verbose=False)
    return [*before, *head, *(tail["input_ids"][-tail_count:] if tail_count else []), *after]


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int, truncation: Truncation
) -> tuple[list[list[int]], list[bool]]:
    """Token ids (special tokens included) of cleaned texts at `max_length`, and whether each was truncated.
    `head` keeps a long text's first tokens; `head_tail` its first and last (`head_and_tail_ids`). Training,
    evaluation and serving all encode through here, so a model sees at serving what it saw in training."""
    if truncation not in ("head", "head_tail"):
        raise ValueError(f"truncation must be 'head' or 'head_tail', got {truncation!r}")
    encoded = tokenizer(
        [tokenizer_input(tokenizer, text, max_length) for text in texts], truncation=True, max_length=max_length
    )
    ids = list(encoded["input_ids"])
    if encoded.encodings is not None:
        truncated = [bool(encoding.overflowing) for encoding in encoded.encodings]
    else:  # a slow tokenizer reports no overflow: count the whole texts' tokens
        truncated = [len(whole) > max_length for whole in tokenizer(texts, truncation=False)["input_ids"]]
    if truncation == "head_tail" and any(truncated):
        special = special_tokens_around(tokenizer)
        ids = [
            head_and_tail_ids(tokenizer, text, text_ids, max_length, special) if cut else text_ids
            for text, text_ids, cut in zip(texts, ids, truncated, strict=True)
        ]
    return ids, truncated


def prepare_split(
    frame: pd.DataFrame,
    cleaning: CleaningConfig,
    tokenizer: PreTrainedTokenizerBase,
    label_map: LabelMap,
    max_length: int,
    truncation: Truncation = "head",
) -> PreparedSplit:
    """Clean, encode labels and tokenize one split; rows that cleaning empties are dropped and counted."""
    cleaned = clean_texts(frame[TEXT].tolist(), cleaning)
    keep = [bool(text) for text in cleaned]
    kept = frame.loc[keep, [LABEL]].reset_index(drop=True)
    texts = [text for text in cleaned if text]
    encoded, truncated = encode_texts(tokenizer, texts, max_length, truncation)
    prepared = pd.DataFrame(
        {
            TEXT: texts,
            LABEL: kept[LABEL],
            LABEL_ID: label_map.encode(kept[LABEL]),
            INPUT_IDS: encoded,
            LENGTH: [len(ids) for ids in encoded],
        }
    )
    return PreparedSplit(frame=prepared, emptied_by_cleaning=len(frame) - len(prepared), truncated=sum(truncated))


@dataclass(frozen=True)
class Preprocessing:
    """What preprocessing decided and training, evaluation and serving must repeat."""

    labels: tuple[str, ...]
    cleaning: dict[str, bool]
    base_model: str
    max_length: int
    truncation: Truncation = RECORDED_BEFORE_TRUNCATION
    predict_max_length: int = PREDICT_AT_TRAINING_LENGTH
    """The tokens per text asked for at prediction (`PipelineConfig.encoder.predict_max_length`); training resolves it
    for the encoder (`prediction_max_length`)."""

    @property
    def label_map(self) -> LabelMap:
        return LabelMap(self.labels)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({**asdict(self), "label2id": self.label_map.label2id}, indent=2))

    @classmethod
    def load(cls, path: Path) -> Preprocessing:
        values = json.loads(Path(path).read_text())
        return cls(
            tuple(values["labels"]),
            values["cleaning"],
            values["base_model"],
            values["max_length"],
            values.get("truncation", RECORDED_BEFORE_TRUNCATION),
            values.get("predict_max_length", PREDICT_AT_TRAINING_LENGTH),
        )
