"""A cluster rollout's decisions, free of Kubernetes and KServe imports: where the champion's artifact is for
KServe's storage initializer, and how a rollout proceeds (create, canary, promote, roll back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Schemes KServe's storage initializer downloads from (it mounts pvc:// instead of downloading).
STORAGE_SCHEMES = ("s3://", "gs://", "https://", "http://", "pvc://", "hdfs://", "webhdfs://", "hf://", "oci://")
MLFLOW_PROXIED_SCHEME = "mlflow-artifacts:"


class DeployError(RuntimeError):
    """The rollout could not be done; the message says what to fix."""


def storage_uri_for(artifact_source: str, artifact_store_uri: str = "") -> str:
    """The storage URI KServe reads the registered model directory from.

    A version registered through a proxying MLflow server (`mlflow-artifacts:/...`) lives under the server's
    `--artifacts-destination`; `artifact_store_uri` names that bucket path so the storage initializer can
    read it directly."""
    source = artifact_source.rstrip("/")
    if source.startswith(MLFLOW_PROXIED_SCHEME):
        if not artifact_store_uri:
            raise DeployError(
                f"the model's artifacts are proxied by the MLflow server ({source}); set artifact_store_uri to "
                "the server's --artifacts-destination (for example s3://mlflow) so KServe can download them"
            )
        relative = source.removeprefix(MLFLOW_PROXIED_SCHEME).lstrip("/")
        return f"{artifact_store_uri.rstrip('/')}/{relative}"
    if source.startswith(STORAGE_SCHEMES):
        return source
    raise DeployError(
        f"KServe cannot download {source!r}: register models on an object store "
        f"({', '.join(scheme.rstrip(':/') for scheme in STORAGE_SCHEMES)}), not a local path"
    )


@dataclass(frozen=True)
class RolloutStep:
    action: Literal["create", "canary", "promote", "rollback"]
    canary_traffic_percent: int | None
    reason: str


def first_rollout_step(existing_storage_uri: str | None, new_storage_uri: str, canary_percent: int) -> RolloutStep:
    """Create the InferenceService, or send a canary share of traffic to the new revision while the previous
    one keeps the rest; nothing to do when the same artifact already serves."""
    if not 0 < canary_percent <= 100:
        raise DeployError(f"canary_traffic_percent must be in 1..100, got {canary_percent}")
    if existing_storage_uri is None:
        return RolloutStep("create", None, "no InferenceService yet: create it with all traffic")
    if existing_storage_uri == new_storage_uri:
        return RolloutStep("promote", None, "this artifact already serves: make sure it has all traffic")
    if canary_percent == 100:
        return RolloutStep("promote", None, "canary of 100%: replace the serving revision at once")
    return RolloutStep(
        "canary", canary_percent, f"an older revision serves: send {canary_percent}% to the new one first"
    )


def after_wait(step: RolloutStep, became_ready: bool) -> RolloutStep | None:
    """What follows the first step: promote a healthy canary, roll back a failed one."""
    if step.action != "canary":
        return None
    if became_ready:
        return RolloutStep("promote", None, "the canary is Ready: move all traffic to it")
    return RolloutStep("rollback", 0, "the canary did not become Ready: all traffic back to the previous revision")
