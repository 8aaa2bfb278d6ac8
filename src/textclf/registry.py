"""Register: MLflow model versions, the challenger/champion aliases, and the promotion gate."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from textclf.names import CHALLENGER_ALIAS, CHAMPION_ALIAS

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

ACCURACY_TAG = "test_accuracy"
PER_CLASS_F1_TAG = "test_per_class_f1"


@dataclass(frozen=True)
class PromotionPolicy:
    """When a challenger may replace the champion."""

    min_accuracy_gain: float = 0.0
    max_class_f1_drop: float = 0.05


@dataclass(frozen=True)
class ModelScore:
    version: str
    accuracy: float
    per_class_f1: dict[str, float]
    drift_window_accuracy: float | None = None
    """Accuracy on the labelled drift window that started a retraining run, when there is one."""


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    challenger: ModelScore
    champion: ModelScore | None
    policy: PromotionPolicy
    f1_drops: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_promotion(challenger: ModelScore, champion: ModelScore | None, policy: PromotionPolicy) -> PromotionDecision:
    """Promote when there is no champion, or the challenger is more accurate by more than the margin
    and no class's F1 falls by more than the allowed drop."""
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


def score_of(version: ModelVersion, drift_window_accuracy: float | None = None) -> ModelScore:
    return ModelScore(
        version=str(version.version),
        accuracy=float(version.tags[ACCURACY_TAG]),
        per_class_f1={k: float(v) for k, v in json.loads(version.tags[PER_CLASS_F1_TAG]).items()},
        drift_window_accuracy=drift_window_accuracy,
    )


def version_tags(metrics: dict[str, Any], data_fingerprint: str, commit: str, params: dict[str, Any]) -> dict[str, str]:
    """Tags every registered version carries (contract 4), as MLflow's string values."""
    tags = {
        ACCURACY_TAG: f"{metrics['accuracy']:.6f}",
        "test_macro_f1": f"{metrics['macro_f1']:.6f}",
        PER_CLASS_F1_TAG: json.dumps({label: round(s["f1"], 6) for label, s in metrics["per_class"].items()}),
        "data_fingerprint": data_fingerprint,
        "git_commit": commit,
    }
    tags.update({f"param.{name}": str(value) for name, value in params.items()})
    return tags


def register_version(
    client: MlflowClient, name: str, run_id: str, source: str, tags: dict[str, str], description: str = ""
) -> ModelVersion:
    """The run's model version, created once: registering the same run again returns the same version."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="textclf text classifier")
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if existing:
        version = existing[0]
    else:
        version = client.create_model_version(name, source, run_id=run_id, tags=tags, description=description)
    for key, value in tags.items():
        if version.tags.get(key) != value:
            client.set_model_version_tag(name, version.version, key, value)
    client.set_registered_model_alias(name, CHALLENGER_ALIAS, version.version)
    return client.get_model_version(name, version.version)


def current_champion(client: MlflowClient, name: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def promote(client: MlflowClient, name: str, version: str) -> None:
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
