"""The drift decision (the "drift decision" contract, docs/architecture.md): a pure function of a drift
report's scores, the window and a policy.

The report (Evidently, read through named fields) is reduced to `CheckScore`s before it gets here, so the
rule that starts retraining runs is tested case by case without a report, a store or a clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DecisionKind = Literal["no_drift", "insufficient_data", "drift", "retrain"]
"""`insufficient_data`: too little to judge (a small window, or a run within the cooldown not judged yet);
`drift`: drift found, retraining waits for feedback labels; `retrain`: drift found and a run may start."""
DECISIONS: tuple[DecisionKind, ...] = ("no_drift", "insufficient_data", "drift", "retrain")
ACCURACY_DROP = "accuracy_drop"
ESTIMATED_ACCURACY_DROP = "estimated_accuracy_drop"
QUALITY_CHECKS = frozenset({ACCURACY_DROP, ESTIMATED_ACCURACY_DROP})
"""Checks of how well the model does rather than of how its inputs moved: one of them alone means drift."""


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinite float, at any depth, as None (JSON null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def score_text(score: float | None) -> str:
    """A check's score as people read it; None is a test that could not be computed (see `CheckScore.to_dict`)."""
    return "not computed" if score is None else f"{score:.4g}"


@dataclass(frozen=True)
class CheckScore:
    """One check of a report: its score, the threshold that means drift, and which side of it is drift
    (distances drift above their threshold, p-values below)."""

    name: str
    score: float
    threshold: float
    drift_when: Literal["above", "below"] = "above"

    @property
    def drifted(self) -> bool:
        return self.score > self.threshold if self.drift_when == "above" else self.score < self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            # A test that could not be computed (Evidently's chi-square on one class gives NaN) has no score; JSON
            # has no NaN, and a NaN in a check's answer made it a 500.
            "score": json_safe(self.score),
            "threshold": self.threshold,
            "drift_when": self.drift_when,
            "drifted": self.drifted,
        }


@dataclass(frozen=True)
class DriftWindow:
    """The predictions a check looked at."""

    size: int
    model_version: str
    start: datetime | None = None
    end: datetime | None = None
    labelled: int = 0
    live_accuracy: float | None = None
    estimated_accuracy: float | None = None
    """Estimated from the window's calibrated probabilities, without labels (`textclf.monitor.estimate`)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "labelled": self.labelled,
            "model_version": self.model_version,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "live_accuracy": self.live_accuracy,
            "estimated_accuracy": self.estimated_accuracy,
        }


class DriftPolicy(BaseModel):
    """When a check's scores mean retraining: the monitor's defaults, stated here once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_window_size: int = Field(200, ge=1, description="predictions a window needs before it is judged")
    min_drifted_checks: int = Field(2, ge=1, description="drifted checks that mean drift")
    cooldown_seconds: float = Field(6 * 3600, ge=0, description="no new retraining run this soon after one")
    max_accuracy_drop: float = Field(
        0.05, ge=0, le=1, description="live accuracy drop (with feedback) that means drift"
    )
    min_labelled: int = Field(50, ge=1, description="feedback labels needed before live accuracy counts")
    estimated_accuracy_drop: float | None = Field(
        None,
        gt=0,
        le=1,
        description="estimated accuracy (no labels needed) this far below the reference's accuracy means drift; "
        "off by default: the estimate misses label and concept shift and errs by up to a few points under "
        "domain shift (docs/monitoring.md)",
    )
    require_feedback: bool = Field(
        True,
        description="retrain only once the window holds min_labelled feedback labels: a run on the old data alone "
        "would learn nothing new, and the gate needs labelled drift-window texts to judge the challenger by",
    )


@dataclass(frozen=True)
class DriftDecision:
    decision: DecisionKind
    reason: str
    scores: dict[str, dict[str, Any]]
    window: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "reason": self.reason, "scores": self.scores, "window": self.window}


def _described(check: CheckScore) -> str:
    side = ">" if check.drift_when == "above" else "<"
    return f"{check.name} {check.score:.3g} {side} {check.threshold:.3g}"


def _closeness(check: CheckScore) -> float:
    """How near a check is to drifting: 1.0 at its threshold, whichever side is drift."""
    if check.drift_when == "above":
        return check.score / check.threshold if check.threshold else 0.0
    return check.threshold / check.score if check.score else float("inf")


def decide(
    scores: Sequence[CheckScore],
    window: DriftWindow,
    policy: DriftPolicy,
    reference_accuracy: float | None = None,
    last_retraining_at: datetime | None = None,
    now: datetime | None = None,
) -> DriftDecision:
    """Retrain when enough checks drift, or live accuracy (with enough feedback) or, where the policy asks, the
    estimated accuracy fell too far below the reference; not enough data when the window is small or a retraining
    run started within the cooldown (the model it produces has not been judged yet); otherwise no drift."""
    checks = list(scores)
    labelled_enough = window.labelled >= policy.min_labelled and window.live_accuracy is not None
    if labelled_enough and reference_accuracy is not None:
        checks.append(CheckScore(ACCURACY_DROP, reference_accuracy - window.live_accuracy, policy.max_accuracy_drop))
    threshold = policy.estimated_accuracy_drop
    if threshold is not None and window.estimated_accuracy is not None and reference_accuracy is not None:
        checks.append(CheckScore(ESTIMATED_ACCURACY_DROP, reference_accuracy - window.estimated_accuracy, threshold))
    by_name = {check.name: check.to_dict() for check in checks}

    def decision(kind: DecisionKind, reason: str) -> DriftDecision:
        return DriftDecision(kind, reason, by_name, window.to_dict())

    if window.size < policy.min_window_size:
        return decision(
            "insufficient_data", f"{window.size} predictions in the window; a check needs {policy.min_window_size}"
        )
    if last_retraining_at is not None and now is not None:
        elapsed = (now - last_retraining_at).total_seconds()
        if elapsed < policy.cooldown_seconds:
            return decision(
                "insufficient_data",
                f"a retraining run started {elapsed / 60:.0f} min ago; the cooldown is "
                f"{policy.cooldown_seconds / 60:.0f} min, so its model is not judged yet",
            )
    drifted = [check for check in checks if check.drifted and check.name not in QUALITY_CHECKS]
    quality_fell = any(check.drifted for check in checks if check.name in QUALITY_CHECKS)
    if len(drifted) >= policy.min_drifted_checks or quality_fell:
        causes = "drift: " + "; ".join(_described(check) for check in checks if check.drifted)
        if policy.require_feedback and window.labelled < policy.min_labelled:
            return decision(
                "drift",
                f"{causes}; waiting for feedback: {window.labelled} of the {policy.min_labelled} labels a "
                "retraining run needs",
            )
        return decision("retrain", causes)
    if drifted:
        return decision(
            "no_drift",
            f"{len(drifted)} check(s) drifted ({'; '.join(map(_described, drifted))}), "
            f"fewer than the {policy.min_drifted_checks} the policy needs",
        )
    if not checks:
        return decision("no_drift", "the report had no checks")
    closest = max(checks, key=_closeness)
    return decision("no_drift", f"no check crossed its threshold (closest: {_described(closest)})")
