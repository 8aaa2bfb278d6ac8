"""What goes into an image's virtual environment: the requirements of one install of textclf with extras
(`textclf[serving]`), read from pyproject.toml alone, and the files pruned from it afterwards.

The Dockerfile installs an image's dependencies from `requirements` before it copies the source, so that a change
to the code rebuilds only the layer that installs textclf itself. It runs this file as a script on the base
image's Python (`python3 image_venv.py requirements pyproject.toml serving`): the standard library only, nothing
of textclf imported.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

SELF_REFERENCE = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)\[(?P<extras>[^\]]+)\]\s*$")

PRUNED_TEST_SUITES = (
    "torch",
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "statsmodels",
    "sympy",
    "networkx",
    "pyarrow",
    "onnx",
    "matplotlib",
    "mpmath",
    "psutil",
)
"""Packages whose own test suites (~290 MB together) are never run in an image."""
PRUNED_PATHS = ("torch/include", "torch/bin/protoc", "torch/bin/protoc-*", "torch/bin/*Test", "torch/bin/test_*")
"""torch's C++ headers (~60 MB) and the test programs and protobuf compiler beside its shared-memory manager."""
STRIPPED = ("torch/lib/*.so*", "pyarrow/lib*.so.*")
"""Shared libraries whose symbol tables (~130 MB) `strip --strip-unneeded` removes. Only these: libraries that
auditwheel vendored and patchelf rewrote (numpy.libs, scipy.libs, ...) break when stripped."""


def requirements(pyproject: dict, extras: list[str]) -> list[str]:
    """The base dependencies and those of `extras`, with the project's references to its own extras
    (`textclf[serving,monitor]`) expanded, in the order pyproject.toml states them, each once."""
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    found: list[str] = list(project.get("dependencies", []))
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop(0)
        if extra in seen:
            continue
        if extra not in optional:
            raise ValueError(f"{project['name']} has no extra {extra!r}; it has {sorted(optional)}")
        seen.add(extra)
        for requirement in optional[extra]:
            own = SELF_REFERENCE.match(requirement)
            if own and own["name"] == project["name"]:
                pending += [name.strip() for name in own["extras"].split(",")]
            else:
                found.append(requirement)
    return list(dict.fromkeys(found))


def prune(site_packages: Path, strip: str | None = None) -> int:
    """Remove the test suites, headers and programs above from an installed environment, and strip the
    libraries above when a `strip` program is given; returns the bytes freed."""
    doomed = [path for pattern in PRUNED_PATHS for path in site_packages.glob(pattern)]
    for package in PRUNED_TEST_SUITES:
        root = site_packages / package
        if root.is_dir():
            doomed += [path for path in root.rglob("*") if path.is_dir() and path.name in {"test", "tests"}]
    freed = 0
    for path in doomed:
        if path.is_dir():
            freed += sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            freed += path.stat().st_size
            path.unlink()
    libraries = [path for pattern in STRIPPED for path in site_packages.glob(pattern) if path.is_file()]
    if strip and libraries:
        before = sum(path.stat().st_size for path in libraries)
        subprocess.run([strip, "--strip-unneeded", *map(str, libraries)], check=True)
        freed += before - sum(path.stat().st_size for path in libraries)
    return freed


USAGE = "usage: image_venv.py requirements PYPROJECT [EXTRA ...] | image_venv.py prune SITE_PACKAGES"


def main(arguments: list[str]) -> int:
    match arguments:
        case ["requirements", pyproject, *extras]:
            print("\n".join(requirements(tomllib.loads(Path(pyproject).read_text()), extras)))
        case ["prune", site_packages]:
            strip = shutil.which("strip")
            freed = prune(Path(site_packages), strip)
            stripped = "stripped" if strip else "no strip program: libraries keep their symbols"
            print(f"pruned {freed / 2**20:.0f} MiB from {site_packages} (test suites, headers; {stripped})")
        case _:
            print(USAGE, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
