"""Preprocess: clean texts, map labels to ids, tokenize with the base model's tokenizer; what preprocessing
decided (labels, cleaning, base model, max length) for training, evaluation and serving to repeat."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from textclf.data.cleaning import CleaningConfig, clean_texts
from textclf.data.sources import LABEL, TEXT

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

LABEL_ID, INPUT_IDS, LENGTH = "label_id", "input_ids", "length"


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
    encoding = tokenizer(text[:budget], add_special_tokens=False, truncation=False, return_offsets_mapping=True)
    word_ids = encoding.word_ids()
    if not word_ids or word_ids[-1] is None:
        return text
    complete_tokens = word_ids.index(word_ids[-1])  # the tokens before the last word's first
    if complete_tokens <= max_length:
        return text
    return text[: encoding["offset_mapping"][complete_tokens - 1][1]]


def prepare_split(
    frame: pd.DataFrame,
    cleaning: CleaningConfig,
    tokenizer: PreTrainedTokenizerBase,
    label_map: LabelMap,
    max_length: int,
) -> PreparedSplit:
    """Clean, encode labels and tokenize one split; rows that cleaning empties are dropped and counted."""
    cleaned = clean_texts(frame[TEXT].tolist(), cleaning)
    keep = [bool(text) for text in cleaned]
    kept = frame.loc[keep, [LABEL]].reset_index(drop=True)
    texts = [text for text in cleaned if text]
    tokenized = tokenizer(
        [tokenizer_input(tokenizer, text, max_length) for text in texts], truncation=True, max_length=max_length
    )
    encoded = tokenized["input_ids"]
    prepared = pd.DataFrame(
        {
            TEXT: texts,
            LABEL: kept[LABEL],
            LABEL_ID: label_map.encode(kept[LABEL]),
            INPUT_IDS: encoded,
            LENGTH: [len(ids) for ids in encoded],
        }
    )
    if tokenized.encodings is not None:
        truncated = sum(bool(encoding.overflowing) for encoding in tokenized.encodings)
    else:  # a slow tokenizer reports no overflow: count the whole texts' tokens
        truncated = sum(len(ids) > max_length for ids in tokenizer(texts, truncation=False)["input_ids"])
    return PreparedSplit(frame=prepared, emptied_by_cleaning=len(frame) - len(prepared), truncated=truncated)


@dataclass(frozen=True)
class Preprocessing:
    """What preprocessing decided and training, evaluation and serving must repeat."""

    labels: tuple[str, ...]
    cleaning: dict[str, bool]
    base_model: str
    max_length: int

    @property
    def label_map(self) -> LabelMap:
        return LabelMap(self.labels)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({**asdict(self), "label2id": self.label_map.label2id}, indent=2))

    @classmethod
    def load(cls, path: Path) -> Preprocessing:
        values = json.loads(Path(path).read_text())
        return cls(tuple(values["labels"]), values["cleaning"], values["base_model"], values["max_length"])
