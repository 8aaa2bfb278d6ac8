"""Building the three images wherever the builder's packages come from (`make images`).

- The base image: `BASE_IMAGE` when it is present or can be pulled; otherwise an equivalent built here from
  Debian's packages (`debootstrap`: bookworm's Python 3.11 with venv and CA certificates), tagged
  `LOCAL_BASE_IMAGE` (docs/deploying.md, "Images").
- PyTorch's wheel index: used when it answers; otherwise torch comes from pip's own configuration.
- pip's configuration: the building machine's (index URLs, CA bundle, constraints, local wheel folders) is written
  into `.build-config/` in the build context with its paths rewritten for the build container. Only the
  Dockerfile's build stages read it; no image is made from them, so none of it reaches an image.

Each build's output goes to a log file; the terminal gets one line per image.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from textclf.names import IMAGE_TARGETS, LOCAL_BASE_IMAGE, PYTHON_BASE_IMAGE, TORCH_CPU_INDEX

REPO = Path(__file__).resolve().parents[3]
BUILD_CONFIG = ".build-config"
BUILD_CONFIG_IN_BUILD = Path("/build-config")
"""Where the Dockerfile's build stages find it."""
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"
# What the official python:3.11-slim-bookworm image holds besides Python: CA certificates, netbase (/etc/services,
# /etc/protocols) and tzdata; python3-venv brings ensurepip's wheels.
DEBIAN_BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "netbase", "tzdata")
# Debian's debootstrap leaves its downloaded packages, apt's lists, documentation and translations (~150 MB).
DEBIAN_BASE_PRUNED = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
    "usr/share/info",
)
PIP_KEPT_OPTIONS = (
    "index-url",
    "extra-index-url",
    "find-links",
    "trusted-host",
    "timeout",
    "default-timeout",
    "retries",
    "proxy",
    "cert",
    "client-cert",
    "constraint",
)
DOCKER_TIMEOUT_SECONDS = 120


class ImageBuildError(RuntimeError):
    """A build step failed; the message says which and where its log is."""


def docker_unavailable_reason() -> str | None:
    """None when a Docker engine answers; else why not, in one line."""
    if shutil.which("docker") is None:
        return "no docker command on PATH (Debian: apt-get install docker.io)"
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if result.returncode != 0 or not result.stdout.strip():
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers ({detail})"
    return None


def image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


def image_size(image: str) -> int:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", image], capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip())


def pull(image: str, timeout: float = DOCKER_TIMEOUT_SECONDS) -> bool:
    try:
        return (
            subprocess.run(["docker", "pull", "--quiet", image], capture_output=True, timeout=timeout).returncode == 0
        )
    except subprocess.TimeoutExpired:
        return False


def build_debian_base(tag: str, mirror: str, log: Path) -> None:
    """A Python 3.11 base image from Debian bookworm's packages, imported into the engine as `tag`. Needs root
    (debootstrap makes device nodes and chroots) and Debian's `debootstrap`."""
    if os.geteuid() != 0:
        raise ImageBuildError(f"building {tag} from Debian's packages needs root (debootstrap)")
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed (Debian: apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="textclf-base-") as scratch:
        root = Path(scratch) / "rootfs"
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(DEBIAN_BASE_PACKAGES)}",
            DEBIAN_SUITE,
            str(root),
            mirror,
        ]
        run_logged(command, log, f"debootstrap {DEBIAN_SUITE}")
        for path in DEBIAN_BASE_PRUNED:
            shutil.rmtree(root / path, ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        # The official image's `python` command, which Compose's health checks call.
        (root / "usr/bin/python").symlink_to("python3")
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            'CMD ["python3"]',
        ]
        imported = subprocess.run(
            ["docker", "import", *(f"--change={change}" for change in changes), "-", tag],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
        )
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise ImageBuildError(f"docker import of {tag} failed: {imported.stderr.strip()}")


def resolve_base_image(requested: str, local_tag: str, mirror: str, log: Path) -> str:
    """`requested` when the engine has it or can pull it; else `local_tag`, built from Debian's packages when the
    engine does not have it yet."""
    if image_exists(requested) or pull(requested):
        return requested
    if not image_exists(local_tag):
        say(f"{requested} cannot be pulled: building {local_tag} from Debian {DEBIAN_SUITE}'s packages")
        build_debian_base(local_tag, mirror, log)
    return local_tag


def reachable(url: str, timeout: float = 10) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def pip_settings(listed: str) -> dict[str, str]:
    """pip's effective settings from `pip config list` (`section.option='value'` lines): environment over the
    install section over global, as pip applies them."""
    rank = {"global": 0, "install": 1, ":env:": 2}
    found: dict[str, tuple[int, str]] = {}
    for line in listed.splitlines():
        key, separator, quoted = line.partition("=")
        section, _, option = key.rpartition(".")
        if not separator or section not in rank:
            continue
        value = quoted.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if option not in found or rank[section] >= found[option][0]:
            found[option] = (rank[section], value)
    return {option: value for option, (_, value) in found.items()}


def local_path(location: str) -> Path | None:
    if location.startswith("file://"):
        return Path(location.removeprefix("file://"))
    if "://" not in location:
        return Path(location)
    return None


def write_build_config(settings: dict[str, str], folder: Path) -> list[str]:
    """Write `folder/pip.conf` for the build container from the machine's pip settings, copying the files they
    name (CA bundle, constraints, local wheel folders) beside it. Returns what was left out, one line each."""
    folder.mkdir(parents=True, exist_ok=True)
    inside = BUILD_CONFIG_IN_BUILD
    lines, notes = ["[global]"], []
    wheels = folder / "wheels"
    kept_wheels: set[str] = set()
    for option in PIP_KEPT_OPTIONS:
        if option not in settings:
            continue
        values = settings[option].split()
        if option in {"index-url", "extra-index-url"}:
            local = [value for value in values if local_path(value) is not None]
            notes += [f"left out local package index {value} (a build cannot reach it)" for value in local]
            values = [value for value in values if value not in local]
        elif option == "find-links":
            rewritten = []
            for value in values:
                path = local_path(value)
                if path is None:
                    rewritten.append(value)
                elif path.is_dir():
                    kept_wheels |= copy_distributions(path, wheels)
                    rewritten.append(str(inside / "wheels"))
                else:
                    notes.append(f"left out find-links {value}: no such folder")
            values = list(dict.fromkeys(rewritten))
        elif option in {"cert", "client-cert", "constraint"}:
            copied = []
            for index, value in enumerate(values):
                source = Path(value)
                if not source.is_file():
                    notes.append(f"left out {option} {value}: no such file")
                    continue
                target = folder / f"{option}-{index}{''.join(source.suffixes[-1:])}"
                shutil.copyfile(source, target)
                copied.append(str(inside / target.name))
            values = copied
        if values:
            lines.append(f"{option} = {' '.join(values)}")
    for stale in wheels.glob("*") if wheels.is_dir() else []:
        if stale.name not in kept_wheels:
            stale.unlink()
    (folder / "pip.conf").write_text("\n".join(lines) + "\n")
    return notes


def copy_distributions(source: Path, target: Path) -> set[str]:
    """Wheels and source archives of a local find-links folder, hard-linked where one filesystem holds both
    (else copied once): they join the build context."""
    target.mkdir(parents=True, exist_ok=True)
    names = set()
    for path in source.iterdir():
        if not (path.is_file() and path.name.endswith((".whl", ".tar.gz", ".zip"))):
            continue
        names.add(path.name)
        destination = target / path.name
        if destination.exists() and destination.stat().st_size == path.stat().st_size:
            continue
        destination.unlink(missing_ok=True)
        try:
            os.link(path, destination)
        except OSError:
            shutil.copy2(path, destination)
    return names


def machine_pip_settings() -> dict[str, str]:
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    return pip_settings(listed.stdout)


@dataclass(frozen=True)
class BuiltImage:
    image: str
    target: str
    seconds: float
    size_bytes: int
    log: str


def run_logged(command: Sequence[str], log: Path, what: str, cwd: Path | None = None) -> None:
    """Run `command` with its output appended to `log`; on failure, raise with the log's last lines."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        returncode = subprocess.run(list(command), cwd=cwd, stdout=out, stderr=subprocess.STDOUT).returncode
    if returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise ImageBuildError(f"{what} failed (log: {log}):\n{tail}")


def build_images(
    base_image: str,
    torch_index_url: str,
    targets: dict[str, str] = IMAGE_TARGETS,
    context: Path = REPO,
) -> list[BuiltImage]:
    """`docker build` each image's target from `context`, in the Dockerfile's order (each reuses the stages the
    previous one built)."""
    log_dir = context / "logs"
    built = []
    for image, target in targets.items():
        log = log_dir / f"image-{target}.log"
        log.unlink(missing_ok=True)
        command = [
            "docker",
            "build",
            "--target",
            target,
            "--tag",
            image,
            "--build-arg",
            f"BASE_IMAGE={base_image}",
            "--build-arg",
            f"TORCH_INDEX_URL={torch_index_url}",
            str(context),
        ]
        started = time.monotonic()
        say(f"building {image} (target {target}; log: {log})")
        run_logged(command, log, f"docker build --target {target}", cwd=context)
        result = BuiltImage(image, target, round(time.monotonic() - started, 1), image_size(image), str(log))
        say(f"  {image}: {result.size_bytes / 1e9:.2f} GB in {result.seconds:.0f} s")
        built.append(result)
    return built


def prepare_and_build(
    base_image: str = PYTHON_BASE_IMAGE,
    local_base_image: str = LOCAL_BASE_IMAGE,
    torch_index_url: str = TORCH_CPU_INDEX,
    targets: dict[str, str] = IMAGE_TARGETS,
    context: Path = REPO,
    mirror: str = DEBIAN_MIRROR,
) -> tuple[str, list[BuiltImage]]:
    """Everything `make images` does: the base, the build configuration, the builds. Returns the base used."""
    base = prepared_base(base_image, local_base_image, mirror, context)
    for note in write_build_config(machine_pip_settings(), context / BUILD_CONFIG):
        say(f"pip configuration: {note}")
    if torch_index_url and not reachable(torch_index_url.rstrip("/") + "/torch/"):
        say(f"{torch_index_url} does not answer: torch comes from pip's configuration")
        torch_index_url = ""
    return base, build_images(base, torch_index_url, targets, context)


def prepared_base(base_image: str, local_base_image: str, mirror: str, context: Path = REPO) -> str:
    """The base image the builds use, once a Docker engine answers (`make base-image` stops here)."""
    reason = docker_unavailable_reason()
    if reason:
        raise ImageBuildError(reason)
    return resolve_base_image(base_image, local_base_image, mirror, context / "logs" / "image-base.log")


def say(line: str) -> None:
    print(line, flush=True)


def main(arguments: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m textclf.deploy.images", description=__doc__.splitlines()[0])
    parser.add_argument("--base-image", default=PYTHON_BASE_IMAGE)
    parser.add_argument("--local-base-image", default=LOCAL_BASE_IMAGE)
    parser.add_argument("--torch-index-url", default=TORCH_CPU_INDEX, help="empty: torch from pip's configuration")
    parser.add_argument("--debian-mirror", default=DEBIAN_MIRROR)
    parser.add_argument("--base-only", action="store_true", help="only resolve (or build) the base image")
    parser.add_argument(
        "--target", action="append", choices=list(IMAGE_TARGETS.values()), help="build only these (repeatable)"
    )
    parser.add_argument("--report", type=Path, help="write the builds' times and sizes here (JSON)")
    options = parser.parse_args(arguments)
    try:
        if options.base_only:
            say(prepared_base(options.base_image, options.local_base_image, options.debian_mirror))
            return 0
        targets = {image: target for image, target in IMAGE_TARGETS.items() if target in (options.target or [target])}
        base, built = prepare_and_build(
            options.base_image, options.local_base_image, options.torch_index_url, targets, mirror=options.debian_mirror
        )
    except ImageBuildError as error:
        print(f"make images: {error}", file=sys.stderr)
        return 1
    if options.report:
        options.report.parent.mkdir(parents=True, exist_ok=True)
        options.report.write_text(json.dumps({"base_image": base, "images": [asdict(b) for b in built]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
