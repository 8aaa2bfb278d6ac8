"""A local deploy: switch a running `textclf serve` to the new champion through the v2 repository load API."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

from textclf.deploy.rollout import DeployError
from textclf.names import CHAMPION_ALIAS

ADMIN_TOKEN_VARIABLE = "TEXTCLF_SERVE_ADMIN_TOKEN"
"""The server's admin token (ServingConfig.admin_token); the deploy step sends it from the same variable."""


@dataclass(frozen=True)
class LocalSwitch:
    switched: bool
    served_version: str
    message: str


def switch_local_server(serving_url: str, model_name: str, timeout_seconds: float = 300) -> LocalSwitch:
    """Ask a running `textclf serve` to reload its model reference (the v2 repository load API): it resolves
    the champion alias again and swaps the new version in without a restart. The load needs the server's admin
    token, read from TEXTCLF_SERVE_ADMIN_TOKEN as the server reads it."""
    base = serving_url.rstrip("/")
    token = os.environ.get(ADMIN_TOKEN_VARIABLE, "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        f"{base}/v2/repository/models/{model_name}/load", data=b"", method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            response.read()
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")
        if error.code in (401, 403):
            return LocalSwitch(
                False,
                "",
                f"{base} refused the model load ({error.code}: {detail}); start the server and this run with the "
                f"same {ADMIN_TOKEN_VARIABLE}",
            )
        raise DeployError(f"{base} refused to load the new champion ({error.code}): {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        return LocalSwitch(False, "", f"no textclf server answers at {base} ({error})")
    version = served_version(base, model_name) or ""
    return LocalSwitch(True, version, f"{base} now serves {model_name} version {version}")


@dataclass(frozen=True)
class LocalDeploy:
    message: str
    served: bool
    """Whether a running server now serves the version (False: no server, or one serving a fixed model)."""


def deploy_locally(serving_url: str, model_name: str, version: str, tracking_uri: str) -> LocalDeploy:
    """Switch a running local server to the new champion, or say exactly how to start one. `DeployError` when
    the server could not load it (the server keeps serving what it served)."""
    outcome = switch_local_server(serving_url, model_name)
    if not outcome.switched:
        return LocalDeploy(
            f"{outcome.message}; to serve the new champion (v{version}) run: "
            f"textclf serve --model models:/{model_name}@{CHAMPION_ALIAS} --tracking-uri {tracking_uri}",
            served=False,
        )
    if outcome.served_version != version:
        return LocalDeploy(
            f"{outcome.message}, not the new champion v{version}: that server serves a fixed model; "
            f"restart it with --model models:/{model_name}@{CHAMPION_ALIAS} to follow promotions",
            served=False,
        )
    return LocalDeploy(outcome.message, served=True)


def served_version(serving_url: str, model_name: str) -> str | None:
    """The version a running local server reports, or None when none answers."""
    try:
        with urllib.request.urlopen(f"{serving_url.rstrip('/')}/v2/models/{model_name}", timeout=30) as response:
            return (json.loads(response.read()).get("versions") or [None])[0]
    except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError):
        return None
