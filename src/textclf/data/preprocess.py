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
