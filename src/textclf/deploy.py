"""The deploy step's decisions, free of Kubernetes and KServe imports: where the champion's artifact is for
KServe's storage initializer, how a rollout proceeds, and how a local server switches to the new champion."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Literal

from textclf.names import CHAMPION_ALIAS

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


@dataclass(frozen=True)
class LocalSwitch:
    switched: bool
    served_version: str
    message: str


def switch_local_server(serving_url: str, model_name: str, timeout_seconds: float = 300) -> LocalSwitch:
    """Ask a running `textclf serve` to reload its model reference (the v2 repository load API): it resolves
    the champion alias again and swaps the new version in without a restart."""
    base = serving_url.rstrip("/")
    request = urllib.request.Request(f"{base}/v2/repository/models/{model_name}/load", data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            response.read()
        with urllib.request.urlopen(f"{base}/v2/models/{model_name}", timeout=30) as response:
            metadata = json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")
        raise DeployError(f"{base} refused to load the new champion ({error.code}): {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        return LocalSwitch(False, "", f"no textclf server answers at {base} ({error})")
    version = (metadata.get("versions") or [""])[0]
    return LocalSwitch(True, version, f"{base} now serves {model_name} version {version}")


def deploy_locally(serving_url: str, model_name: str, version: str, tracking_uri: str) -> str:
    """Switch a running local server to the new champion, or say exactly how to start one."""
    outcome = switch_local_server(serving_url, model_name)
    if not outcome.switched:
        return (
            f"{outcome.message}; to serve the new champion (v{version}) run: "
            f"textclf serve --model models:/{model_name}@{CHAMPION_ALIAS} --tracking-uri {tracking_uri}"
        )
    if outcome.served_version != version:
        return (
            f"{outcome.message}, not the new champion v{version}: that server serves a fixed model; "
            f"restart it with --model models:/{model_name}@{CHAMPION_ALIAS} to follow promotions"
        )
    return outcome.message
