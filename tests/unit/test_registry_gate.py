"""The promotion gate, case by case."""

import pytest

from textclf.registry.gate import ModelScore, PromotionPolicy, decide_promotion

pytestmark = pytest.mark.unit

POLICY = PromotionPolicy(min_accuracy_gain=0.01, max_class_f1_drop=0.03)
CHAMPION = ModelScore("1", 0.80, {"neg": 0.80, "pos": 0.80})


def test_first_model_becomes_champion() -> None:
    decision = decide_promotion(ModelScore("1", 0.5, {"neg": 0.5}), None, POLICY)
    assert decision.promote and "first model" in decision.reason


def test_better_challenger_is_promoted() -> None:
    decision = decide_promotion(ModelScore("2", 0.83, {"neg": 0.82, "pos": 0.84}), CHAMPION, POLICY)
    assert decision.promote
    assert decision.f1_drops == {"neg": -0.02, "pos": -0.04}


def test_gain_within_the_margin_is_not_enough() -> None:
    decision = decide_promotion(ModelScore("2", 0.805, {"neg": 0.8, "pos": 0.81}), CHAMPION, POLICY)
    assert not decision.promote and "does not beat" in decision.reason


def test_equal_accuracy_never_promotes_even_without_margin() -> None:
    no_margin = PromotionPolicy(min_accuracy_gain=0.0, max_class_f1_drop=1.0)
    decision = decide_promotion(ModelScore("2", 0.80, CHAMPION.per_class_f1), CHAMPION, no_margin)
    assert not decision.promote


def test_a_class_f1_drop_beyond_delta_blocks_promotion() -> None:
    decision = decide_promotion(ModelScore("2", 0.90, {"neg": 0.76, "pos": 0.99}), CHAMPION, POLICY)
    assert not decision.promote
    assert "neg (-0.0400)" in decision.reason and "pos" not in decision.reason.split("for:")[1]


def test_a_class_missing_from_the_challenger_counts_as_zero_f1() -> None:
    decision = decide_promotion(ModelScore("2", 0.95, {"pos": 0.99}), CHAMPION, POLICY)
    assert not decision.promote and "neg" in decision.reason


def test_the_champion_is_not_promoted_over_itself() -> None:
    decision = decide_promotion(CHAMPION, CHAMPION, POLICY)
    assert not decision.promote and "already champion" in decision.reason


def test_decision_serializes_its_inputs() -> None:
    record = decide_promotion(ModelScore("2", 0.9, {"neg": 0.9, "pos": 0.9}), CHAMPION, POLICY).to_dict()
    assert record["champion"]["version"] == "1" and record["policy"]["max_class_f1_drop"] == 0.03


def _with_window(score: ModelScore, window_accuracy: float) -> ModelScore:
    return ModelScore(score.version, score.accuracy, score.per_class_f1, window_accuracy)


BETTER_ON_TEST = ModelScore("2", 0.83, {"neg": 0.82, "pos": 0.84})


def test_after_drift_the_challenger_must_also_beat_the_champion_on_the_drift_window() -> None:
    decision = decide_promotion(_with_window(BETTER_ON_TEST, 0.70), _with_window(CHAMPION, 0.70), POLICY)
    assert not decision.promote and "drift-window accuracy 0.7000 vs champion's 0.7000" in decision.reason
    decision = decide_promotion(_with_window(BETTER_ON_TEST, 0.90), _with_window(CHAMPION, 0.70), POLICY)
    assert decision.promote and "drift-window accuracy 0.9000" in decision.reason


def test_better_on_the_drift_window_is_not_enough_when_worse_on_the_frozen_test_split() -> None:
    worse_on_test = ModelScore("2", 0.79, {"neg": 0.79, "pos": 0.79}, 0.95)
    decision = decide_promotion(worse_on_test, _with_window(CHAMPION, 0.60), POLICY)
    assert not decision.promote and "does not beat" in decision.reason


def test_require_approval_holds_only_a_passing_challenger_trained_on_feedback() -> None:
    champion = ModelScore("1", 0.80, {"a": 0.8})
    from_feedback = ModelScore("2", 0.90, {"a": 0.9}, trained_on_feedback=True)
    by_hand = ModelScore("3", 0.90, {"a": 0.9})
    held = decide_promotion(from_feedback, champion, PromotionPolicy(require_approval=True))
    assert not held.promote and held.awaiting_approval and "textclf promote 2" in held.reason
    assert decide_promotion(by_hand, champion, PromotionPolicy(require_approval=True)).promote
    assert decide_promotion(from_feedback, champion, PromotionPolicy()).promote, "off by default"
    worse = ModelScore("4", 0.70, {"a": 0.7}, trained_on_feedback=True)
    rejected = decide_promotion(worse, champion, PromotionPolicy(require_approval=True))
    assert not rejected.promote and not rejected.awaiting_approval


SHADOWED = PromotionPolicy(
    min_accuracy_gain=0.01, max_class_f1_drop=0.03, min_shadow_texts=100, min_shadow_agreement=0.9
)


def _comparison(texts: int, agreement: float, accuracy: dict | None = None, champion: str = "1") -> dict:
    return {
        "challenger_version": "2",
        "champion_version": champion,
        "texts": texts,
        "agreement": agreement,
        "labelled": 40 if accuracy else 0,
        "accuracy": accuracy,
    }


def test_a_shadow_window_holds_a_passing_challenger_but_not_the_first_model() -> None:
    held = decide_promotion(BETTER_ON_TEST, CHAMPION, SHADOWED)
    assert not held.promote and held.awaiting_shadow and held.verdict == "awaiting_shadow"
    assert "textclf promote 2" in held.reason
    assert not decide_promotion(ModelScore("2", 0.70, CHAMPION.per_class_f1), CHAMPION, SHADOWED).awaiting_shadow
    assert decide_promotion(BETTER_ON_TEST, None, SHADOWED).promote


@pytest.mark.parametrize(
    ("comparison", "policy", "refusal"),
    [
        (_comparison(100, 0.95), SHADOWED, ""),
        (_comparison(99, 0.95), SHADOWED, "shadowed on 99 live texts"),
        ({**_comparison(500, 0.95), "challenger_version": "3"}, SHADOWED, "shadowed on 0 live texts"),
        (_comparison(100, 0.95, champion="0"), SHADOWED, "against v0, but v1 is champion"),
        (_comparison(100, 0.85), SHADOWED, "agrees with the champion on 0.8500"),
        (_comparison(100, 0.95), SHADOWED.model_copy(update={"shadow_accuracy_win": True}), "none arrived"),
        (
            _comparison(100, 0.95, {"champion": 0.9, "challenger": 0.9}),
            SHADOWED.model_copy(update={"shadow_accuracy_win": True}),
            "does not beat the champion's 0.9000",
        ),
        (
            _comparison(100, 0.95, {"champion": 0.9, "challenger": 0.92}),
            SHADOWED.model_copy(update={"shadow_accuracy_win": True}),
            "",
        ),
        ({"texts": 0}, POLICY, ""),
    ],
)
def test_the_shadow_window_qualifies_a_challenger_only_when_every_condition_holds(
    comparison: dict, policy: PromotionPolicy, refusal: str
) -> None:
    from textclf.registry.gate import shadow_refusal

    found = shadow_refusal(comparison, "2", "1", policy)
    assert (refusal in found and bool(found)) if refusal else found == ""
