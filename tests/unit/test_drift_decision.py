from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from textclf.monitor.decision import CheckScore, DriftPolicy, DriftWindow, decide

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
POLICY = DriftPolicy(
    min_window_size=100, min_drifted_checks=1, cooldown_seconds=3600, max_accuracy_drop=0.05, require_feedback=False
)
CALM = [CheckScore("embedding_drift", 0.05, 0.1), CheckScore("label_drift_p_value", 0.4, 0.05, "below")]
SHIFTED = [CheckScore("embedding_drift", 0.3, 0.1), CheckScore("label_drift_p_value", 0.001, 0.05, "below")]


def window(size: int = 500, labelled: int = 0, live_accuracy: float | None = None) -> DriftWindow:
    return DriftWindow(size, "3", NOW - timedelta(hours=1), NOW, labelled, live_accuracy)


def test_calm_window_is_no_drift_and_names_the_closest_check() -> None:
    decision = decide(CALM, window(), POLICY)
    assert decision.decision == "no_drift"
    assert "embedding_drift 0.05 > 0.1" in decision.reason
    assert decision.scores["label_drift_p_value"] == {
        "score": 0.4,
        "threshold": 0.05,
        "drift_when": "below",
        "drifted": False,
    }


def test_shifted_window_retrains_and_says_why() -> None:
    decision = decide(SHIFTED, window(), POLICY)
    assert decision.decision == "retrain"
    assert "embedding_drift 0.3 > 0.1" in decision.reason and "label_drift_p_value 0.001 < 0.05" in decision.reason


def test_small_window_is_insufficient_data_even_when_shifted() -> None:
    decision = decide(SHIFTED, window(size=99), POLICY)
    assert decision.decision == "insufficient_data"
    assert "99 predictions" in decision.reason


@pytest.mark.parametrize(("minutes_ago", "expected"), [(30, "insufficient_data"), (61, "retrain")])
def test_cooldown_after_a_retraining_run(minutes_ago: int, expected: str) -> None:
    decision = decide(SHIFTED, window(), POLICY, last_retraining_at=NOW - timedelta(minutes=minutes_ago), now=NOW)
    assert decision.decision == expected


def test_accuracy_drop_alone_retrains_once_there_is_enough_feedback() -> None:
    assert decide(CALM, window(labelled=80, live_accuracy=0.80), POLICY, reference_accuracy=0.90).decision == "retrain"
    # Too little feedback: accuracy is not judged at all.
    too_few = decide(CALM, window(labelled=10, live_accuracy=0.50), POLICY, reference_accuracy=0.90)
    assert too_few.decision == "no_drift" and "accuracy_drop" not in too_few.scores
    # A small drop within the policy is no drift.
    assert decide(CALM, window(labelled=80, live_accuracy=0.87), POLICY, reference_accuracy=0.90).decision == "no_drift"


TWO_CHECKS = DriftPolicy(min_window_size=100, min_drifted_checks=2, require_feedback=False)


def test_a_policy_can_require_several_drifted_checks() -> None:
    one_drifted = [SHIFTED[0], CALM[1]]
    decision = decide(one_drifted, window(), TWO_CHECKS)
    assert decision.decision == "no_drift"
    assert "fewer than the 2" in decision.reason
    assert decide(SHIFTED, window(), TWO_CHECKS).decision == "retrain"


def test_the_decision_serializes_to_the_contract() -> None:
    payload = json.loads(json.dumps(decide(SHIFTED, window(), POLICY).to_dict()))
    assert set(payload) == {"decision", "reason", "scores", "window"}
    assert payload["window"]["size"] == 500 and payload["window"]["model_version"] == "3"
    assert payload["window"]["start"].startswith("2026-11-22T11:00")


def test_a_test_that_could_not_be_computed_has_no_score_and_is_valid_json() -> None:
    """Evidently's chi-square on a window of one predicted class gives a NaN p-value: no drift, no score."""
    scores = [*CALM, CheckScore("predicted_label", float("nan"), 0.01, "below")]
    payload = decide(scores, window(), POLICY).to_dict()
    assert json.loads(json.dumps(payload, allow_nan=False))["scores"]["predicted_label"] == {
        "score": None,
        "threshold": 0.01,
        "drift_when": "below",
        "drifted": False,
    }
    assert payload["decision"] == "no_drift"


@pytest.mark.parametrize(
    "options", [{"min_window_size": 0}, {"cooldown_seconds": -1}, {"max_accuracy_drop": 2}, {"min_labelled": 0}]
)
def test_invalid_policies_are_refused(options: dict) -> None:
    with pytest.raises(ValueError):
        DriftPolicy(**options)


def test_drift_waits_for_feedback_when_the_policy_requires_it() -> None:
    policy = DriftPolicy(min_window_size=100, min_labelled=50, require_feedback=True)
    waiting = decide(SHIFTED, window(labelled=49, live_accuracy=0.9), policy)
    assert waiting.decision == "drift"
    assert "embedding_drift 0.3 > 0.1" in waiting.reason and "49 of the 50 labels" in waiting.reason
    assert decide(SHIFTED, window(labelled=50, live_accuracy=0.9), policy).decision == "retrain"
    assert decide(CALM, window(labelled=0), policy).decision == "no_drift"


def test_an_estimated_accuracy_drop_is_its_own_reason_and_off_by_default() -> None:
    fallen = DriftWindow(500, "3", NOW - timedelta(hours=1), NOW, estimated_accuracy=0.78)
    assert decide(CALM, fallen, POLICY, reference_accuracy=0.90).decision == "no_drift"
    watched = POLICY.model_copy(update={"estimated_accuracy_drop": 0.05})
    decision = decide(CALM, fallen, watched, reference_accuracy=0.90)
    assert decision.decision == "retrain"
    assert decision.reason == "drift: estimated_accuracy_drop 0.12 > 0.05"
    assert decision.window["estimated_accuracy"] == 0.78
    steady = DriftWindow(500, "3", NOW - timedelta(hours=1), NOW, estimated_accuracy=0.88)
    assert decide(CALM, steady, watched, reference_accuracy=0.90).decision == "no_drift"
