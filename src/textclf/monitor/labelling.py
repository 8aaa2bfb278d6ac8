"""The labelling queue: which live texts a person should label next, by what a label is worth.

A text is worth labelling when the model is likely wrong on it (its calibrated probability of being wrong,
`uncertainty`) and when it is far from what the model was trained on (`novelty`: how much farther its nearest
reference text is than reference texts' nearest neighbours are from each other, as a share of them). A batch is
picked greedily: each next text is the most valuable one after subtracting its similarity to the texts already
picked (maximal marginal relevance), so a batch spreads over the window's kinds of text instead of being fifty
near-duplicates, and an exact repeat of a picked text is never picked again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class QueueSettings(BaseModel):
    """How the queue values a text: the monitor's defaults, stated here once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    novelty_weight: float = Field(0.5, ge=0, description="weight of novelty next to uncertainty (weight 1)")
    redundancy_weight: float = Field(
        1.0, ge=0, description="how much a text's cosine similarity to an already picked one lowers its value"
    )
    max_items: int = Field(100, ge=1, le=1000, description="most texts one request for the queue may ask for")


@dataclass(frozen=True)
class QueuedText:
    position: int
    """The text's row in the window the queue was built from."""
    value: float
    uncertainty: float
    novelty: float
    redundancy: float
    """Cosine similarity to the most similar text picked before it."""


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=float)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """The chance the model's answer is wrong (1 - its top calibrated probability), scaled so that a text whose
    classes are all equally likely is 1."""
    probabilities = np.asarray(probabilities, dtype=float)
    classes = probabilities.shape[1]
    return np.clip((1.0 - probabilities.max(axis=1)) / (1.0 - 1.0 / classes), 0.0, 1.0)


def novelty(window_vectors: np.ndarray, reference_vectors: np.ndarray) -> np.ndarray:
    """For each window text, the share of reference texts that lie closer to their own nearest other reference
    text than this text lies to its nearest reference text: about a half in the reference's domain, near 1 far
    from it. Cosine distance of the sentence embeddings; 0 for every text when there are fewer than two reference
    texts to compare with."""
    reference = _unit(reference_vectors)
    if len(reference) < 2 or not len(window_vectors):
        return np.zeros(len(window_vectors))
    among_reference = reference @ reference.T
    np.fill_diagonal(among_reference, -np.inf)
    typical = np.sort(1.0 - among_reference.max(axis=1))
    nearest = 1.0 - (_unit(window_vectors) @ reference.T).max(axis=1)
    return np.searchsorted(typical, nearest, side="right") / len(typical)


def rank_for_labelling(
    probabilities: np.ndarray,
    window_vectors: np.ndarray,
    reference_vectors: np.ndarray,
    count: int,
    settings: QueueSettings | None = None,
    texts: list[str] | None = None,
) -> list[QueuedText]:
    """The `count` window texts (rows of `probabilities` and `window_vectors`) most worth labelling, best first.
    `texts`, when given, keeps exact repeats out of one batch."""
    settings = settings or QueueSettings()
    wrong = uncertainty(probabilities)
    far = novelty(window_vectors, reference_vectors)
    value = wrong + settings.novelty_weight * far
    vectors = _unit(window_vectors)
    candidates = np.ones(len(value), dtype=bool)
    redundancy = np.zeros(len(value))
    picked: list[QueuedText] = []
    seen: set[str] = set()
    while len(picked) < count and candidates.any():
        adjusted = np.where(candidates, value - settings.redundancy_weight * redundancy, -np.inf)
        best = int(adjusted.argmax())
        candidates[best] = False
        if texts is not None:
            if texts[best] in seen:
                continue
            seen.add(texts[best])
        picked.append(
            QueuedText(best, float(value[best]), float(wrong[best]), float(far[best]), float(redundancy[best]))
        )
        redundancy = np.maximum(redundancy, np.clip(vectors @ vectors[best], 0.0, 1.0))
    return picked
