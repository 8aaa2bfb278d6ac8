"""Batch prediction with a loaded model: the path evaluation uses, and serving will use."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textclf.data.cleaning import CleaningConfig, clean_texts
from textclf.data.preprocess import Truncation, encode_texts
from textclf.registry.model_dir import ONNX_FILES, ModelDirectory
from textclf.runtime.cpu import configure_torch_threads
from textclf.serve.backends import (
    BACKENDS,
    TORCH_BACKEND,
    Backend,
    BackendName,
    BackendTiming,
    OnnxBackend,
    TorchBackend,
    accuracy_record,
    eligible_backends,
    export_onnx,
    installed_backends,
    require_installed,
    time_backends,
)
from textclf.serve.explain import Explanation, explain_texts

if TYPE_CHECKING:
    import pandas as pd
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from textclf.registry.model_dir import ModelMetadata

logger = logging.getLogger(__name__)

# Sequence lengths rounded up to this: fewer distinct shapes, so oneDNN's per-shape kernels and caches are
# reused instead of rebuilt. 8 costs a 20-word text nothing measurable; 16 cost it 1 ms in 5.
PAD_TO_MULTIPLE_OF = 8


def predict_probabilities(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 64,
    bf16: bool | None = None,
    truncation: Truncation = "head",
    temperature: float = 1.0,
) -> np.ndarray:
    """Class probabilities of a PyTorch model for already-cleaned texts, batched by length so padding stays
    small."""
    return forward_texts(
        TorchBackend(model, bf16),
        tokenizer,
        texts,
        max_length,
        batch_size,
        truncation=truncation,
        temperature=temperature,
    ).probabilities


@dataclass
class ForwardResult:
    probabilities: np.ndarray
    truncated: np.ndarray
    embeddings: np.ndarray | None = None
    """Sentence embeddings: the encoder's last hidden states, mean-pooled over each text's tokens."""


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def length_groups(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices of texts by token count, in sub-batches of at most `batch_size` that each pass pads to its longest.
    A sub-batch ends where the next text is over twice as long as its shortest (and 32 tokens longer): a short
    text among long ones would be padded to their length and cost as much as one of them (a one-text request
    sharing a batch with a long request's slice, say)."""
    order = np.argsort(lengths, kind="stable")
    groups, start = [], 0
    for position in range(1, len(order) + 1):
        shortest = lengths[order[start]]
        if (
            position == len(order)
            or position - start >= batch_size
            or lengths[order[position]] > max(2 * shortest, shortest + 32)
        ):
            groups.append(order[start:position])
            start = position
    return groups


def forward_texts(
    backend: Backend,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 64,
    embeddings: bool = False,
    truncation: Truncation = "head",
    temperature: float = 1.0,
    num_labels: int | None = None,
) -> ForwardResult:
    """One forward pass of any backend over already-cleaned texts, in sub-batches of like lengths (`length_groups`)
    so padding stays small;
    long texts are truncated as in training (`encode_texts`), and the logits divided by the model's
    `temperature`.

    The fast tokenizer records what truncation removed, so the truncation flags cost no second tokenization;
    the sentence embeddings come from the same pass as the probabilities."""
    if not texts:
        return ForwardResult(np.zeros((0, num_labels or 0), dtype=np.float32), np.zeros(0, dtype=bool), None)
    ids, cut = encode_texts(tokenizer, list(texts), max_length, truncation)
    truncated = np.array(cut, dtype=bool)
    probabilities: np.ndarray | None = None
    pooled: np.ndarray | None = None
    for batch_index in length_groups([len(text_ids) for text_ids in ids], batch_size):
        encoded = tokenizer.pad(
            {"input_ids": [ids[i] for i in batch_index]},
            padding=True,
            pad_to_multiple_of=PAD_TO_MULTIPLE_OF if max_length % PAD_TO_MULTIPLE_OF == 0 else None,
            return_tensors="np",
        )
        logits, batch_embeddings = backend.run(encoded["input_ids"], encoded["attention_mask"], embeddings)
        if probabilities is None:
            probabilities = np.empty((len(texts), logits.shape[-1]), dtype=np.float32)
        probabilities[batch_index] = softmax(logits.astype(np.float32) / temperature)
        if batch_embeddings is not None:
            if pooled is None:
                pooled = np.zeros((len(texts), batch_embeddings.shape[-1]), dtype=np.float32)
            pooled[batch_index] = batch_embeddings
    return ForwardResult(probabilities, truncated, pooled)


def store_linear_weights_in_bf16(model: PreTrainedModel) -> None:
    """Under bf16 autocast every linear layer casts its fp32 weight and bias to bf16 on every call; keeping
    them in bf16 gives bit-identical outputs without that cast (a 20-word forward pass: 8.4 → 5.3 ms here).
    Only for autocast inference: run without autocast, these layers would meet fp32 inputs."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.to(torch.bfloat16)


@dataclass
class Predictions:
    """One row per text, in columns: what every consumer reads (the server's protocols, batch scoring, the
    monitor) without a per-text object in between."""

    labels: list[str]
    scores: np.ndarray
    probabilities: np.ndarray
    truncated: np.ndarray
    embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, rows: slice) -> Predictions:
        return Predictions(
            self.labels[rows],
            self.scores[rows],
            self.probabilities[rows],
            self.truncated[rows],
            None if self.embeddings is None else self.embeddings[rows],
        )

    @classmethod
    def join(cls, parts: Sequence[Predictions]) -> Predictions:
        """The rows of `parts` (at least one), in order."""
        return cls(
            [label for part in parts for label in part.labels],
            np.concatenate([part.scores for part in parts]),
            np.concatenate([part.probabilities for part in parts]),
            np.concatenate([part.truncated for part in parts]),
            None if parts[0].embeddings is None else np.concatenate([part.embeddings for part in parts]),
        )


class TextClassifier:
    """A serving-ready model directory, loaded once: cleaning, tokenization and one backend's model together."""

    def __init__(self, backend: Backend, tokenizer: PreTrainedTokenizerBase, metadata: ModelMetadata):
        self.backend = backend
        self.tokenizer = tokenizer
        self.metadata = metadata
        self.cleaning = CleaningConfig.from_dict(metadata.cleaning)
        self.labels = tuple(metadata.labels)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        threads: int = 0,
        backend: BackendName = TORCH_BACKEND,
        export_to: Path | None = None,
    ) -> TextClassifier:
        """The directory with one backend. An ONNX backend whose file the directory lacks (it was trained before
        textclf exported them) is exported first, into `export_to` when the directory is read-only."""
        from transformers import AutoTokenizer

        model_dir = ModelDirectory(Path(directory))
        directory = model_dir.path
        if backend in BACKENDS:
            require_installed(backend)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        metadata = model_dir.metadata()
        if backend == TORCH_BACKEND:
            return cls(load_torch_backend(directory, threads), tokenizer, metadata)
        if backend not in ONNX_FILES:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, not {backend!r}")
        # The directory's own export, else one made earlier into `export_to`, else a new one.
        places = [model_dir] + ([ModelDirectory(export_to)] if export_to else [])
        path = next((place.onnx_file(backend) for place in places if place.onnx_file(backend).exists()), None)
        if path is None:
            require_installed(TORCH_BACKEND)
            logger.info("%s lacks its %s export: exporting it", directory, backend)
            path = export_onnx(directory, export_to or directory)[backend]
        return cls(OnnxBackend(backend, path, threads), tokenizer, metadata)

    def save(self, directory: Path, reference: pd.DataFrame) -> ModelDirectory:
        """Write this classifier (PyTorch weights, tokenizer, metadata) and its drift reference sample as a model
        directory, then its ONNX exports, with each backend's accuracy on the reference sample recorded in the
        metadata for `serve --backend auto`."""
        if not isinstance(self.backend, TorchBackend):
            raise TypeError(f"only a PyTorch classifier is saved (its weights); this one runs {self.backend.name}")
        model_dir = ModelDirectory(directory).write(self.backend.model, self.tokenizer, self.metadata, reference)
        model_dir.write_metadata(replace(self.metadata, backends=measure_backends(model_dir.path)))
        return model_dir

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Each text's calibrated class probabilities, one column per label in `labels` order."""
        return self.predict(texts, batch_size).probabilities

    def predict(
        self, texts: Sequence[str], batch_size: int = 64, embeddings: bool = False, max_length: int | None = None
    ) -> Predictions:
        """Labels, scores and probabilities (and, asked for, sentence embeddings) for raw texts, cut as the model
        was trained (`metadata.truncation`) to its prediction length (`metadata.prediction_length`); `max_length`
        below that truncates sooner (the monitor embeds shorter encodings)."""
        cleaned = clean_texts(list(texts), self.cleaning)
        length = min(max_length or self.metadata.prediction_length, self.metadata.prediction_length)
        result = forward_texts(
            self.backend,
            self.tokenizer,
            cleaned,
            length,
            batch_size,
            embeddings,
            truncation=self.metadata.truncation,
            temperature=self.metadata.temperature,
            num_labels=len(self.labels),
        )
        best = result.probabilities.argmax(axis=1)
        return Predictions(
            labels=[self.labels[i] for i in best],
            scores=result.probabilities[np.arange(len(best)), best],
            probabilities=result.probabilities,
            truncated=result.truncated,
            embeddings=result.embeddings,
        )

    def explain(self, texts: Sequence[str]) -> list[Explanation]:
        """Each text's predicted label with one attribution per word (`textclf.serve.explain`)."""
        return explain_texts(lambda variants: self.predict(variants).probabilities, self.labels, texts)


def load_torch_backend(directory: Path, threads: int = 0) -> TorchBackend:
    """The directory's weights in PyTorch, ready for inference (bf16 weights where autocast runs in bf16)."""
    from transformers import AutoModelForSequenceClassification

    configure_torch_threads(threads)
    backend = TorchBackend(AutoModelForSequenceClassification.from_pretrained(directory))
    if backend.bf16:
        store_linear_weights_in_bf16(backend.model)
    return backend


def measure_backends(directory: Path, export_to: Path | None = None, threads: int = 0) -> dict[str, dict[str, Any]]:
    """Each backend's accuracy on the directory's labelled reference sample (the validation split), and its
    agreement with PyTorch's labels: what `auto` reads. An export that fails leaves that backend out, with the
    reason."""
    reference = ModelDirectory(directory).reference()
    texts, expected = reference["text"].tolist(), reference["label"].astype(str).tolist()
    torch_labels = TextClassifier.load(directory, threads).predict(texts).labels
    records = {TORCH_BACKEND: accuracy_record(torch_labels, expected, torch_labels)}
    try:
        export_onnx(directory, export_to or directory)
    except Exception as error:  # an architecture the exporter cannot trace still serves with PyTorch
        logger.warning("ONNX export of %s failed, serving stays on PyTorch: %s", directory, error)
        return records | {name: {"export_error": str(error)} for name in ONNX_FILES}
    for name in ONNX_FILES:
        labels = TextClassifier.load(directory, threads, name, export_to).predict(texts).labels
        records[name] = accuracy_record(labels, expected, torch_labels)
    return records


@dataclass(frozen=True)
class BackendSelection:
    classifier: TextClassifier
    eligible: list[str]
    timings: list[BackendTiming]
    """Empty when only one backend was eligible: then nothing was timed."""


def load_fastest(directory: Path, threads: int = 0, export_to: Path | None = None) -> BackendSelection:
    """`auto`: the fastest backend on this machine among those whose recorded validation accuracy is within
    `AUTO_ACCURACY_TOLERANCE` of PyTorch's. A directory with no record (trained before textclf measured
    backends) is measured now, on its reference sample, which needs PyTorch. Only backends this environment has
    installed are candidates."""
    directory = Path(directory)
    recorded = ModelDirectory(directory).metadata().backends
    if not recorded:
        require_installed(TORCH_BACKEND)
        recorded = measure_backends(directory, export_to, threads)
    eligible = eligible_backends(recorded, installed_backends())
    if len(eligible) == 1:
        # Nothing to choose between: timing one backend would only delay the load (~2 s).
        return BackendSelection(TextClassifier.load(directory, threads, eligible[0], export_to), eligible, [])
    candidates = {name: TextClassifier.load(directory, threads, name, export_to) for name in eligible}
    timings = time_backends({name: classifier.predict for name, classifier in candidates.items()})
    fastest = min(timings, key=lambda timing: timing.cost)
    return BackendSelection(candidates[fastest.backend], eligible, timings)
