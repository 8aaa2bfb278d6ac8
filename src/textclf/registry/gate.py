"""The promotion gate: when a challenger may replace the champion, as a pure function of their scores."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion


ACCURACY_TAG = "test_accuracy"


PER_CLASS_F1_TAG = "test_per_class_f1"
BEHAVIOUR_FAILURE_RATE_TAG = "test_behaviour_max_failure_rate"
"""The largest failure rate of any one behavioural test; absent where none ran."""
TRAINED_ON_FEEDBACK_TAG = "trained_on_feedback"
"""On a version trained with rows the drift monitor supplied (feedback labels, new labelled files)."""
SHADOW_POLICY_TAG = "shadow_policy"
"""On a version the gate holds for its shadow window: the shadow conditions `textclf promote` checks (JSON)."""
SHADOW_FIELDS = ("min_shadow_texts", "min_shadow_agreement", "shadow_accuracy_win")


class PromotionPolicy(BaseModel):
    """When a challenger may replace the champion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_accuracy_gain: float = Field(0.0, ge=0, description="accuracy a challenger must gain to be promoted")
    max_class_f1_drop: float = Field(0.05, ge=0, description="largest per-class F1 drop a promotion allows")
    max_behaviour_failure_rate: float = Field(
        1.0,
        ge=0,
        le=1,
        description="largest share of failed cases any one behavioural test may have (1 = no condition); below 1, "
        "a challenger without behavioural test results is not promoted",
    )
    require_approval: bool = Field(
        False,
        description="a challenger trained on data the monitor supplied (feedback labels) waits as challenger for "
        "`textclf promote VERSION` instead of being promoted",
    )
    min_shadow_texts: int = Field(
        0,
        ge=0,
        description="live texts a challenger must be shadowed on (`textclf serve --shadow-model "
        "models:/NAME@challenger`) before it replaces a champion: one that passes waits as challenger for "
        "`textclf promote VERSION`, which checks its window on the monitor; 0 = no shadow window",
    )
    min_shadow_agreement: float = Field(
        0.0, ge=0, le=1, description="with a shadow window: least share of its texts labelled as the champion did"
    )
    shadow_accuracy_win: bool = Field(
        False,
        description="with a shadow window: the challenger must be more accurate than the champion on the window's "
        "texts that have feedback labels",
    )

    @property
    def requires_shadow(self) -> bool:
        return self.min_shadow_texts > 0


@dataclass(frozen=True)
class ModelScore:
    version: str
    accuracy: float
    per_class_f1: dict[str, float]
    drift_window_accuracy: float | None = None
    trained_on_feedback: bool = False
    """Accuracy on the labelled drift window that started a retraining run, when there is one."""
    behaviour_max_failure_rate: float | None = None
    """The largest failure rate of any one behavioural test, None where none ran."""


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    challenger: ModelScore
    champion: ModelScore | None
    policy: PromotionPolicy
    f1_drops: dict[str, float] = field(default_factory=dict)
    awaiting_approval: bool = False
    """It passed, but `require_approval` holds it for a person (`textclf promote VERSION`)."""
    awaiting_shadow: bool = False
    """It passed, but `min_shadow_texts` holds it until its shadow window qualifies (`textclf promote VERSION`)."""

    @property
    def verdict(self) -> str:
        if self.promote:
            return "promote"
        if self.awaiting_shadow:
            return "awaiting_shadow"
        return "awaiting_approval" if self.awaiting_approval else "keep_champion"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "policy": self.policy.model_dump()}


def decide_promotion(challenger: ModelScore, champion: ModelScore | None, policy: PromotionPolicy) -> PromotionDecision:
    """Promote when there is no champion, or the challenger is more accurate by more than the margin
    and no class's F1 falls by more than the allowed drop; with `require_approval`, a challenger trained on
    feedback that passes waits for a person instead."""
    decision = _judge(challenger, champion, policy)
    if decision.promote and policy.requires_shadow and champion is not None:
        reason = (
            f"{decision.reason}; held as challenger for a shadow window of {policy.min_shadow_texts} live texts: "
            f"serve with --shadow-model models:/NAME@challenger, then `textclf promote {challenger.version} "
            "--monitor-url URL` checks the window and makes it champion"
        )
        return replace(decision, promote=False, reason=reason, awaiting_shadow=True)
    if decision.promote and policy.require_approval and challenger.trained_on_feedback:
        reason = (
            f"{decision.reason}; held for approval (require_approval: trained on feedback labels): "
            f"`textclf promote {challenger.version}` makes it champion"
        )
        return replace(decision, promote=False, reason=reason, awaiting_approval=True)
    return decision


def _judge(challenger: ModelScore, champion: ModelScore | None, policy: PromotionPolicy) -> PromotionDecision:
    behaviour = _behaviour_refusal(challenger, policy)
    if behaviour:
        return PromotionDecision(False, behaviour, challenger, champion, policy)
    if champion is None:
        return PromotionDecision(True, "no champion yet: the first model becomes champion", challenger, None, policy)
    if champion.version == challenger.version:
        return PromotionDecision(
            False, f"version {challenger.version} is already champion", challenger, champion, policy
        )
    drops = {
        label: round(f1 - challenger.per_class_f1.get(label, 0.0), 6) for label, f1 in champion.per_class_f1.items()
    }
    too_large = {label: drop for label, drop in drops.items() if drop > policy.max_class_f1_drop}
    gain = challenger.accuracy - champion.accuracy
    if gain <= policy.min_accuracy_gain:
        reason = (
            f"accuracy {challenger.accuracy:.4f} does not beat champion v{champion.version}'s "
            f"{champion.accuracy:.4f} by more than {policy.min_accuracy_gain:.4f}"
        )
        return PromotionDecision(False, reason, challenger, champion, policy, drops)
    if too_large:
        listed = ", ".join(f"{label} (-{drop:.4f})" for label, drop in sorted(too_large.items()))
        reason = f"F1 drops by more than {policy.max_class_f1_drop:.4f} for: {listed}"
        return PromotionDecision(False, reason, challenger, champion, policy, drops)
    reason = f"accuracy {challenger.accuracy:.4f} beats champion v{champion.version}'s {champion.accuracy:.4f}"
    if challenger.drift_window_accuracy is not None and champion.drift_window_accuracy is not None:
        window_gain = challenger.drift_window_accuracy - champion.drift_window_accuracy
        on_window = (
            f"drift-window accuracy {challenger.drift_window_accuracy:.4f} vs champion's "
            f"{champion.drift_window_accuracy:.4f}"
        )
        if window_gain <= policy.min_accuracy_gain:
            return PromotionDecision(
                False,
                f"{on_window}: no gain beyond {policy.min_accuracy_gain:.4f}",
                challenger,
                champion,
                policy,
                drops,
            )
        reason = f"{reason}; {on_window}"
    return PromotionDecision(True, reason, challenger, champion, policy, drops)


def shadow_refusal(comparison: dict[str, Any], challenger: str, champion: str | None, policy: PromotionPolicy) -> str:
    """Why the shadow window (the monitor's `GET /shadow` over the challenger's latest texts) does not qualify
    the challenger, or "" where it does."""
    if not policy.requires_shadow:
        return ""
    texts = comparison.get("texts", 0) if comparison.get("challenger_version") == challenger else 0
    if texts < policy.min_shadow_texts:
        return f"v{challenger} was shadowed on {texts} live texts; min_shadow_texts is {policy.min_shadow_texts}"
    if champion is not None and comparison["champion_version"] != champion:
        return f"v{challenger} was shadowed against v{comparison['champion_version']}, but v{champion} is champion now"
    if comparison["agreement"] < policy.min_shadow_agreement:
        return (
            f"v{challenger} agrees with the champion on {comparison['agreement']:.4f} of its shadowed texts, "
            f"less than min_shadow_agreement {policy.min_shadow_agreement:.4f}"
        )
    if policy.shadow_accuracy_win:
        accuracy = comparison.get("accuracy")
        if not accuracy:
            return "shadow_accuracy_win needs feedback labels on shadowed texts, and none arrived"
        if accuracy["challenger"] <= accuracy["champion"]:
            return (
                f"on the {comparison['labelled']} shadowed texts with feedback, v{challenger}'s accuracy "
                f"{accuracy['challenger']:.4f} does not beat the champion's {accuracy['champion']:.4f}"
            )
    return ""


def _behaviour_refusal(challenger: ModelScore, policy: PromotionPolicy) -> str:
    """Why the behavioural tests bar the challenger, or "" where they do not (a condition on the challenger
    alone: it applies with or without a champion)."""
    if policy.max_behaviour_failure_rate >= 1.0:
        return ""
    rate = challenger.behaviour_max_failure_rate
    if rate is None:
        return (
            f"max_behaviour_failure_rate is {policy.max_behaviour_failure_rate:.4f} but version "
            f"{challenger.version} has no behavioural test results (behaviour_tests: none, or no suite fits its labels)"
        )
    if rate > policy.max_behaviour_failure_rate:
        return (
            f"a behavioural test fails {rate:.4f} of its cases, more than max_behaviour_failure_rate "
            f"{policy.max_behaviour_failure_rate:.4f}"
        )
    return ""


def score_of(version: ModelVersion, drift_window_accuracy: float | None = None) -> ModelScore:
    return ModelScore(
        version=str(version.version),
        accuracy=float(version.tags[ACCURACY_TAG]),
        per_class_f1={k: float(v) for k, v in json.loads(version.tags[PER_CLASS_F1_TAG]).items()},
        drift_window_accuracy=drift_window_accuracy,
        trained_on_feedback=version.tags.get(TRAINED_ON_FEEDBACK_TAG) == "true",
        behaviour_max_failure_rate=float(version.tags[BEHAVIOUR_FAILURE_RATE_TAG])
        if BEHAVIOUR_FAILURE_RATE_TAG in version.tags
        else None,
    )
