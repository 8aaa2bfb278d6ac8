"""Drift explained (`textclf.monitor.groups`): a sub-population planted in a window is found as a group of its own,
named by the words that set it apart, with its share, examples and estimated accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from textclf.monitor.groups import EmbeddedSide, describe, explain_drift, words

pytestmark = pytest.mark.unit

LABELS = ("negative", "positive")
REVIEW_WORDS = [
    "film",
    "plot",
    "actor",
    "scene",
    "director",
    "story",
    "cinema",
    "performance",
    "script",
    "screen",
    "ending",
    "cast",
]
SLANG = ["lol", "omg", "tbh", "smh", "gonna", "wanna", "ngl", "fr"]


def review(rng: np.random.Generator) -> str:
    return "the " + " ".join(rng.choice(REVIEW_WORDS, 8)) + " was " + rng.choice(["great", "dull", "moving"])


def tweet(rng: np.random.Generator) -> str:
    return f"@user{rng.integers(1000)} " + " ".join(rng.choice(SLANG, 5)) + f" #{rng.choice(['mood', 'ugh'])}"


def embed(texts: list[str]) -> np.ndarray:
    return HashingVectorizer(n_features=256, alternate_sign=False).transform(texts).toarray()


def test_a_planted_sub_population_is_one_named_group_with_its_share_and_accuracy() -> None:
    rng = np.random.default_rng(0)
    reference = [review(rng) for _ in range(400)]
    window = [review(rng) for _ in range(240)] + [tweet(rng) for _ in range(160)]
    planted = np.arange(240, 400)
    # The model is sure of the reviews and unsure of the tweets.
    probabilities = np.tile([0.05, 0.95], (400, 1))
    probabilities[planted] = [0.4, 0.6]
    truth = [None] * 400
    truth[240:250] = ["negative"] * 10  # feedback on ten tweets: all wrong

    groups = explain_drift(
        EmbeddedSide(reference, embed(reference)),
        EmbeddedSide(window, embed(window)),
        probabilities,
        LABELS,
        window_truth=truth,
    )

    grown = [group for group in groups if group["window_share"] > 2 * group["reference_share"] + 0.05]
    assert grown == groups[: len(grown)], "the groups the window holds more of come first"
    assert sum(group["window_texts"] for group in grown) == len(planted)
    assert sum(group["window_share"] for group in grown) == pytest.approx(0.4)
    for group in grown:
        assert group["reference_share"] == 0
        assert {term["term"] for term in group["terms"][:3]} & {"@mention", "#hashtag", *SLANG}
        assert all(example.startswith("@user") for example in group["examples"])
        assert group["estimated_accuracy"] == pytest.approx(0.6)
    assert sum(group["labelled"] for group in grown) == 10
    assert {group["live_accuracy"] for group in grown if group["labelled"]} == {0.0}
    assert "@mention" in describe(grown[0]) and "estimated accuracy 0.60" in describe(grown[0])
    kept = [group for group in groups if group not in grown]
    assert all(group["estimated_accuracy"] == pytest.approx(0.95) for group in kept)


def test_mentions_and_hashtags_are_one_word_each_and_tiny_sides_give_no_groups() -> None:
    assert words("@Alice and @bob love #Cats, don't they?") == {"@mention", "and", "love", "#hashtag", "don't", "they"}
    one = EmbeddedSide(["a text"], embed(["a text"]))
    assert explain_drift(one, one, np.array([[0.5, 0.5]]), LABELS) == []
