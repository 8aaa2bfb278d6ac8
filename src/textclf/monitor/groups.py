"""Drift explained: which kinds of text the drifted window holds more of than the reference, and how the model
does on each.

The texts both sides embedded for the drift report's embedding check are clustered together (k-means on their
principal components). A group's share of the window against its share of the reference says what is new or
grown; the words its window texts use far more often than the reference's say what it is about (@mentions and
#hashtags count as one word each, so "tweets with @mentions" shows up as such); its texts nearest the centre are
its examples; its calibrated probabilities give its estimated accuracy (`textclf.monitor.estimate`), and its
feedback labels, where there are any, its live accuracy.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from textclf.monitor.estimate import estimate_performance

WORD = re.compile(r"[@#]?\w[\w'\u2019-]*")
MENTION, HASHTAG = "@mention", "#hashtag"
EXAMPLE_CHARS = 300


@dataclass(frozen=True)
class GroupSettings:
    groups: int = 8
    """Clusters over both sides' embedded texts."""
    components: int = 20
    """Principal components the clustering reads."""
    terms: int = 8
    """Words reported per group."""
    examples: int = 3
    min_term_share: float = 0.1
    """A word must appear in at least this share of a group's window texts to describe it."""


@dataclass(frozen=True)
class EmbeddedSide:
    """The texts of one side that were embedded, with their vectors (rows in the same order)."""

    texts: list[str]
    vectors: np.ndarray


def words(text: str) -> set[str]:
    """A text's distinct words, lowercased; every @mention and every #hashtag one word of its own kind."""
    found = set()
    for word in WORD.findall(text.lower()):
        found.add(MENTION if word.startswith("@") else HASHTAG if word.startswith("#") else word)
    return found


def distinguishing_terms(
    group: Sequence[set[str]], reference: Sequence[set[str]], count: int, min_share: float
) -> list[dict[str, Any]]:
    """The words a group's texts use far more often than the reference's: the log ratio of the share of texts
    holding each (smoothed by half a text), among words in at least `min_share` of the group's texts."""
    in_group = Counter(word for text in group for word in text)
    in_reference = Counter(word for text in reference for word in text)
    least = max(2, math.ceil(min_share * len(group)))
    scored = []
    for word, texts in in_group.items():
        if texts < least:
            continue
        group_share = texts / len(group)
        reference_share = in_reference[word] / max(len(reference), 1)
        lift = math.log((texts + 0.5) / (len(group) + 1)) - math.log((in_reference[word] + 0.5) / (len(reference) + 1))
        if lift > 0:
            scored.append((lift, word, group_share, reference_share))
    scored.sort(reverse=True)
    return [
        {"term": word, "window_share": round(share, 3), "reference_share": round(reference_share, 3)}
        for _, word, share, reference_share in scored[:count]
    ]


def _projected(reference: np.ndarray, window: np.ndarray, components: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    both = np.vstack([reference, window]).astype(float)
    both /= np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-12)
    kept = min(components, both.shape[0] - 1, both.shape[1])
    return PCA(n_components=kept, random_state=seed).fit_transform(both) if kept >= 1 else both


def explain_drift(
    reference: EmbeddedSide,
    window: EmbeddedSide,
    window_probabilities: np.ndarray,
    labels: Sequence[str],
    window_predicted: Sequence[str] | None = None,
    window_truth: Sequence[str | None] | None = None,
    settings: GroupSettings | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The window's groups, those the window holds most more of than the reference first. `window_probabilities`
    (texts x classes, in `labels` order), `window_predicted` (the labels served;
    by default the most probable) and `window_truth` (feedback labels, None where there is none) have a row per
    embedded window text."""
    from sklearn.cluster import KMeans

    settings = settings or GroupSettings()
    texts = len(reference.texts) + len(window.texts)
    count = min(settings.groups, texts // 2)
    if count < 2 or not window.texts or not reference.texts:
        return []
    points = _projected(reference.vectors, window.vectors, settings.components, seed)
    clustering = KMeans(n_clusters=count, n_init=4, random_state=seed).fit(points)
    reference_groups = clustering.labels_[: len(reference.texts)]
    window_groups = clustering.labels_[len(reference.texts) :]
    window_points = points[len(reference.texts) :]
    reference_words = [words(text) for text in reference.texts]
    window_words = [words(text) for text in window.texts]
    probabilities = np.asarray(window_probabilities, dtype=float)
    predicted = window_predicted or [labels[row] for row in probabilities.argmax(axis=1)]
    groups = []
    for group in range(count):
        members = np.flatnonzero(window_groups == group)
        window_share = len(members) / len(window.texts)
        reference_share = float(np.mean(reference_groups == group))
        if not len(members):
            continue
        distance = np.linalg.norm(window_points[members] - clustering.cluster_centers_[group], axis=1)
        nearest = members[np.argsort(distance)[: settings.examples]]
        estimate = estimate_performance(probabilities[members], labels, seed=seed)
        labelled = [(window_truth[i], predicted[i]) for i in members if window_truth is not None and window_truth[i]]
        groups.append(
            {
                "window_share": round(window_share, 4),
                "reference_share": round(reference_share, 4),
                "window_texts": len(members),
                "terms": distinguishing_terms(
                    [window_words[i] for i in members], reference_words, settings.terms, settings.min_term_share
                ),
                "examples": [window.texts[i][:EXAMPLE_CHARS] for i in nearest],
                "estimated_accuracy": round(estimate.accuracy, 4),
                "estimated_accuracy_interval": [round(bound, 4) for bound in estimate.accuracy_interval],
                "labelled": len(labelled),
                "live_accuracy": (
                    round(float(np.mean([given == label for label, given in labelled])), 4) if labelled else None
                ),
            }
        )
    groups.sort(key=lambda group: group["window_share"] - group["reference_share"], reverse=True)
    return groups


def describe(group: dict[str, Any]) -> str:
    """One line a person reads: "@mention, lol, ... - 38 % of the window (2 % of the reference), estimated
    accuracy 0.71"."""
    terms = ", ".join(term["term"] for term in group["terms"][:5]) or "no distinguishing words"
    return (
        f"{terms}: {group['window_share']:.0%} of the window ({group['reference_share']:.0%} of the reference), "
        f"estimated accuracy {group['estimated_accuracy']:.2f}"
    )
