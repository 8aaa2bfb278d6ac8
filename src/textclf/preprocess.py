"""Preprocess: clean texts, map labels to ids, tokenize with the base model's tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from textclf.cleaning import CleaningConfig, clean_texts
from textclf.data import LABEL, TEXT

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
    full = tokenizer(texts, truncation=False)["input_ids"]
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    prepared = pd.DataFrame(
        {
            TEXT: texts,
            LABEL: kept[LABEL],
            LABEL_ID: label_map.encode(kept[LABEL]),
            INPUT_IDS: encoded,
            LENGTH: [len(ids) for ids in encoded],
        }
    )
    truncated = sum(len(ids) > max_length for ids in full)
    return PreparedSplit(frame=prepared, emptied_by_cleaning=len(frame) - len(prepared), truncated=truncated)
