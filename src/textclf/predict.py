"""Batch prediction with a loaded model: the path evaluation uses, and serving will use."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from textclf.cleaning import CleaningConfig, clean_texts
from textclf.runtime import configure_torch_threads, cpu_supports_bf16

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from textclf.model_dir import ModelMetadata


def predict_probabilities(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 64,
    bf16: bool | None = None,
) -> np.ndarray:
    """Class probabilities for already-cleaned texts, batched by length so padding stays small."""
    import torch

    if not texts:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    use_bf16 = cpu_supports_bf16() if bf16 is None else bf16
    model.eval()
    order = np.argsort([len(text) for text in texts], kind="stable")
    probabilities = np.empty((len(texts), model.config.num_labels), dtype=np.float32)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if use_bf16 else nullcontext()
    with torch.inference_mode(), autocast:
        for start in range(0, len(texts), batch_size):
            batch_index = order[start : start + batch_size]
            encoded = tokenizer(
                [texts[i] for i in batch_index],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            logits = model(**encoded).logits.float()
            probabilities[batch_index] = torch.softmax(logits, dim=-1).numpy()
    return probabilities


@dataclass
class Predictions:
    labels: list[str]
    scores: np.ndarray
    probabilities: np.ndarray


class TextClassifier:
    """A serving-ready model directory, loaded once: cleaning, tokenization and the model together."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, metadata: ModelMetadata):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.metadata = metadata
        self.cleaning = CleaningConfig.from_dict(metadata.cleaning)
        self.labels = tuple(metadata.labels)

    @classmethod
    def load(cls, directory: str | Path) -> TextClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from textclf.model_dir import load_metadata

        configure_torch_threads()
        directory = Path(directory)
        model = AutoModelForSequenceClassification.from_pretrained(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        return cls(model, tokenizer, load_metadata(directory))

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> Predictions:
        cleaned = clean_texts(list(texts), self.cleaning)
        probabilities = predict_probabilities(self.model, self.tokenizer, cleaned, self.metadata.max_length, batch_size)
        best = probabilities.argmax(axis=1)
        return Predictions(
            labels=[self.labels[i] for i in best],
            scores=probabilities[np.arange(len(best)), best],
            probabilities=probabilities,
        )
