"""The labelling queue's ranking (`textclf.monitor.labelling`) on constructed cases: an uncertain text before a
confident one, a text far from the training data before one like it, and a batch spread over kinds of text rather
than filled with near-duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from textclf.monitor.labelling import QueueSettings, novelty, rank_for_labelling, uncertainty

pytestmark = pytest.mark.unit


def around(centre: np.ndarray, count: int, spread: float, seed: int) -> np.ndarray:
    return centre + np.random.default_rng(seed).normal(scale=spread, size=(count, len(centre)))


AXIS = np.eye(8)
REFERENCE = around(AXIS[0], 200, 0.05, 0)


def test_an_uncertain_text_comes_before_a_confident_one() -> None:
    probabilities = np.array([[0.97, 0.03], [0.55, 0.45], [0.8, 0.2]])
    vectors = around(AXIS[0], 3, 0.05, 1)
    ranked = rank_for_labelling(probabilities, vectors, REFERENCE, 3)
    assert [item.position for item in ranked] == [1, 2, 0]
    assert ranked[0].uncertainty == pytest.approx(0.9)
    assert uncertainty(np.array([[0.25, 0.25, 0.25, 0.25]])) == pytest.approx([1.0])


def test_a_text_unlike_the_training_data_comes_before_one_like_it_at_the_same_confidence() -> None:
    vectors = np.vstack([around(AXIS[0], 1, 0.05, 2), AXIS[3]])
    far = novelty(vectors, REFERENCE)
    assert far[1] == 1.0 and far[0] < 0.95
    ranked = rank_for_labelling(np.array([[0.7, 0.3], [0.7, 0.3]]), vectors, REFERENCE, 2)
    assert ranked[0].position == 1


def test_a_batch_spreads_over_kinds_of_text_instead_of_near_duplicates() -> None:
    # Fifty near-duplicates the model is unsure of, and five other kinds of text it is a little less unsure of.
    duplicates = around(AXIS[1], 50, 0.01, 3)
    others = np.vstack([around(AXIS[k], 1, 0.01, k) for k in range(2, 7)])
    vectors = np.vstack([duplicates, others])
    probabilities = np.vstack([np.tile([0.5, 0.5], (50, 1)), np.tile([0.6, 0.4], (5, 1))])
    ranked = rank_for_labelling(probabilities, vectors, REFERENCE, 6)
    positions = [item.position for item in ranked]
    assert sum(position < 50 for position in positions) == 1, positions
    assert set(positions[1:]) == set(range(50, 55))
    plain = rank_for_labelling(probabilities, vectors, REFERENCE, 6, QueueSettings(redundancy_weight=0))
    assert all(item.position < 50 for item in plain), "without the redundancy term the near-duplicates win"


def test_an_exact_repeat_is_never_picked_twice_and_a_batch_never_exceeds_the_window() -> None:
    texts = ["same text", "same text", "another"]
    ranked = rank_for_labelling(np.tile([0.5, 0.5], (3, 1)), np.eye(3), REFERENCE[:, :3], 10, texts=texts)
    assert sorted(texts[item.position] for item in ranked) == ["another", "same text"]
    assert rank_for_labelling(np.tile([0.5, 0.5], (2, 1)), np.eye(2), np.eye(2)[:1], 5)[0].novelty == 0.0
