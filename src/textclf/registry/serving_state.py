"""The registry follows serving: the `champion` alias names the version that actually serves.

The promote step moves `champion` before the deploy step rolls the version out (a local server loads
`models:/NAME@champion`). When that rollout fails or is rolled back, the alias goes back to the version that
still serves; when a run stopped between the two (a crash after promote), the next run's gate puts it back
before judging. Each version records what its deploy did in the `deploy_state` tag."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from textclf.names import CHAMPION_ALIAS
from textclf.registry.versions import current_champion

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from textclf.registry.gate import PromotionPolicy

log = logging.getLogger(__name__)

DEPLOY_STATE_TAG = "deploy_state"
DEPLOY_DETAIL_TAG = "deploy_detail"
PREVIOUS_CHAMPION_TAG = "previous_champion"
APPROVED_BY_TAG = "approved_by"
DeployState = Literal["serving", "not_served", "failed"]
"""serving: rolled out (or loaded by the local server); not_served: nothing was running to take it;
failed: the rollout failed or was rolled back, and the alias went back."""


def champion_version(client: MlflowClient, name: str) -> str | None:
    champion = current_champion(client, name)
    return str(champion.version) if champion is not None else None


def promote(client: MlflowClient, name: str, version: str) -> None:
    """Move `champion` to `version`, noting on it which version it replaced (where a failed rollout returns)."""
    previous = champion_version(client, name)
    if previous is not None and previous != version:
        client.set_model_version_tag(name, version, PREVIOUS_CHAMPION_TAG, previous)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)


def record_deploy(client: MlflowClient, name: str, version: str, state: DeployState, detail: str) -> None:
    client.set_model_version_tag(name, version, DEPLOY_STATE_TAG, state)
    client.set_model_version_tag(name, version, DEPLOY_DETAIL_TAG, detail[:5000])


def restore_after_failed_deploy(
    client: MlflowClient, name: str, failed_version: str, serving_version: str | None, reason: str
) -> str:
    """The rollout of `failed_version` failed: `champion` goes back to the version serving (as the server
    reports it, else the one the failed version replaced). Returns what was done, for the log and the run."""
    record_deploy(client, name, failed_version, "failed", reason)
    target = serving_version or client.get_model_version(name, failed_version).tags.get(PREVIOUS_CHAMPION_TAG)
    current = champion_version(client, name)
    if not target or target == failed_version:
        message = f"champion stays v{failed_version}: no other version is known to serve"
    elif current != failed_version:
        message = f"champion is v{current} already (moved since): left as it is"
    else:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, target)
        message = f"champion moved back from v{failed_version} to v{target}, which serves"
    log.warning("deploy of %s v%s failed (%s): %s", name, failed_version, reason, message)
    return message


def heal_champion(client: MlflowClient, name: str) -> str | None:
    """A champion whose deploy never finished (no `deploy_state`: the run stopped after promote) while an
    earlier version was served: `champion` goes back to the latest version served. Returns what was done."""
    current = champion_version(client, name)
    if current is None or DEPLOY_STATE_TAG in client.get_model_version(name, current).tags:
        return None
    served = [
        int(version.version)
        for version in client.search_model_versions(f"name = '{name}'")
        if version.tags.get(DEPLOY_STATE_TAG) == "serving"
    ]
    if not served or str(max(served)) == current:
        return None
    target = str(max(served))
    client.set_registered_model_alias(name, CHAMPION_ALIAS, target)
    message = (
        f"champion v{current} was promoted but never deployed (a run stopped between promote and deploy): "
        f"champion moved back to v{target}, the latest version served"
    )
    log.warning(message)
    return message


def shadow_conditions(client: MlflowClient, name: str, version: str) -> PromotionPolicy | None:
    """The shadow conditions the gate recorded on a version it held for its shadow window, else None."""
    import json

    from mlflow.exceptions import MlflowException

    from textclf.registry.gate import SHADOW_POLICY_TAG, PromotionPolicy

    try:
        tags = client.get_model_version(name, version).tags
    except MlflowException:
        raise LookupError(f"{name} has no version {version}: list them with the MLflow UI or client") from None
    if SHADOW_POLICY_TAG not in tags:
        return None
    return PromotionPolicy(**json.loads(tags[SHADOW_POLICY_TAG]))


def approve(client: MlflowClient, name: str, version: str, approved_by: str) -> str:
    """A person promotes `version` (what `require_approval` waits for): it becomes champion, and the version
    records who approved it. Returns what was done."""
    from datetime import UTC, datetime

    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, version)
    except MlflowException:
        raise LookupError(f"{name} has no version {version}: list them with the MLflow UI or client") from None
    previous = champion_version(client, name)
    client.set_model_version_tag(name, version, APPROVED_BY_TAG, f"{approved_by} at {datetime.now(UTC).isoformat()}")
    promote(client, name, version)
    return f"{name} v{version} is champion (was v{previous}), approved by {approved_by}"
