"""Containers of the project's images, run as the chart and Compose run them, for the container tier.

The `docker run` options come from the chart's rendered security contexts (tests/unit/test_compose.py checks
Compose's `x-hardened` block says the same): uid and gid 1000, a read-only root filesystem, every capability
dropped, no new privileges, and a tmpfs at /tmp where the pod has an emptyDir. Every container and volume made
here carries the label `textclf-test`, and goes at the end of its test.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

TEST_LABEL = "textclf-test"
REQUIRE_DOCKER_VARIABLE = "TEXTCLF_REQUIRE_DOCKER"
"""Set to 1 (as .ci/run does) where the container tier must run: what it lacks is then a failure, not a skip."""
REQUIRED = pytest.StashKey[bool]()


def missing(config: pytest.Config, message: str) -> None:
    """Skip for what this machine lacks, or fail where the tier must run."""
    if config.stash.get(REQUIRED, False):
        pytest.fail(f"{message} ({REQUIRE_DOCKER_VARIABLE}=1)")
    pytest.skip(message)


def hardened_run_options(pod_security: dict, container_security: dict) -> list[str]:
    """`docker run` options for a Kubernetes pod and container security context."""
    options = ["--user", f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}"]
    if container_security.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    options += [f"--cap-drop={capability}" for capability in container_security["capabilities"]["drop"]]
    if container_security.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    return options


def chart_run_options() -> list[str]:
    """How the chart runs the monitor (every workload shares these contexts): the options above plus a tmpfs
    for /tmp, the emptyDir it mounts there."""
    from textclf.deploy.manifests import render_chart

    [monitor] = [d for d in render_chart() if d["kind"] == "Deployment" and d["metadata"]["name"] == "textclf-monitor"]
    pod = monitor["spec"]["template"]["spec"]
    [container] = [c for c in pod["containers"] if c["name"] == "monitor"]
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    tmpfs = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs and m["mountPath"] == "/tmp"]
    return [
        *hardened_run_options(pod["securityContext"], container["securityContext"]),
        *(f"--tmpfs={p}" for p in tmpfs),
    ]


def docker(*arguments: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *arguments], capture_output=True, text=True, timeout=timeout, check=check)


@dataclass
class Container:
    id: str
    name: str

    def logs(self) -> str:
        result = docker("logs", self.id, check=False)
        return result.stdout + result.stderr

    def published(self, port: int) -> str:
        """host:port of a published container port."""
        first = docker("port", self.id, f"{port}/tcp").stdout.splitlines()[0]
        return first.strip()

    def exec(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return docker("exec", self.id, *command, timeout=timeout, check=False)

    def running(self) -> bool:
        state = docker("inspect", "--format", "{{.State.Running}}", self.id, check=False).stdout.strip()
        return state == "true"


@contextmanager
def running_container(image: str, *arguments: str, options: list[str] | None = None) -> Iterator[Container]:
    """`docker run -d` of `image` with the chart's hardening and `options`; removed after."""
    name = f"textclf-test-{uuid.uuid4().hex[:8]}"
    command = ["run", "-d", "--name", name, "--label", TEST_LABEL, *chart_run_options(), *(options or []), image]
    container = Container(docker(*command, *arguments).stdout.strip(), name)
    try:
        yield container
    finally:
        docker("rm", "-f", "-v", container.id, check=False)


@contextmanager
def labelled(kind: str) -> Iterator[str]:
    """A new Docker `kind` ("volume", "network") with the test label, named for this test; removed after."""
    name = f"textclf-test-{uuid.uuid4().hex[:8]}"
    docker(kind, "create", "--label", TEST_LABEL, name)
    try:
        yield name
    finally:
        docker(kind, "rm", name, check=False)


def volume() -> AbstractContextManager[str]:
    """A new named volume, as Compose makes one."""
    return labelled("volume")


def network() -> AbstractContextManager[str]:
    return labelled("network")


def wait_until(condition: Callable[[], bool], timeout: float, what: str, log: Callable[[], str] = str) -> float:
    """Seconds until `condition` holds; an AssertionError with `log()` when `timeout` passes first."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} within {timeout} s; log:\n{log()[-4000:]}")
        time.sleep(0.1)
    return time.monotonic() - started


def answers(url: str, timeout: float = 2, headers: dict[str, str] | None = None) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def http_json(url: str, body: object | None = None, headers: dict[str, str] | None = None, timeout: float = 60) -> dict:
    """A JSON call; an HTTP error raises with the answer's body in its message."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{url} answered {error.code}: {error.read().decode(errors='replace')}") from error


def readable_copy(source: Path, into: Path) -> Path:
    """A copy of `source` that uid 1000 can read (and, for a folder meant as a volume, write)."""
    import shutil

    into.mkdir(parents=True, exist_ok=True)
    target = into / source.name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)
    for path in [target, *target.rglob("*")] if target.is_dir() else [target]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    into.chmod(0o777)
    return target
