"""The import contracts (pyproject.toml, `[tool.importlinter]`) checked on the layout the package installs as.

The adapters live in the repository's top-level folders and install as `textclf.<folder>`; an editable install
maps them, but import-linter reads packages from disk, so it is run on the built wheel, unpacked. The same
wheel shows which packages a user gets. `python -m tests.support.layers` (what `make lint` runs) exits non-zero
when a contract is broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
# What building the package reads: copied to a scratch folder, so the build leaves nothing in the checkout
# (setuptools' build/ would otherwise keep modules deleted since and put them in the next wheel).
PACKAGE_SOURCES = ["pyproject.toml", "setup.py", "README.md", "src", "components", "pipelines", "serving", "monitoring"]


def scratch_copy(into: Path, repository: Path = REPOSITORY) -> Path:
    """The files the package is built from, copied under `into`."""
    source = into / "repository"
    source.mkdir(parents=True)
    for name in PACKAGE_SOURCES:
        origin = repository / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(origin, source / name)
    return source


def build_wheel(source: Path, into: Path) -> Path:
    """The wheel `pip install` would build from `source` (no dependencies, this environment's setuptools)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(into), "."],
        cwd=source,
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    (wheel,) = into.glob("textclf-*.whl")
    return wheel


def unpacked_wheel(source: Path, into: Path) -> Path:
    """The installed layout of `source`'s package: the built wheel, unpacked under `into`."""
    wheel = build_wheel(source, into / "dist")
    site = into / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def lint_imports(site: Path, config: Path) -> subprocess.CompletedProcess:
    """import-linter over the package found in `site` (ahead of any installed copy on the path)."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())",
            "--no-cache",
            str(config),
        ],
        cwd=site,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="textclf-layers-") as scratch:
        source = scratch_copy(Path(scratch))
        result = lint_imports(unpacked_wheel(source, Path(scratch)), source / "pyproject.toml")
    print(result.stdout + result.stderr, end="")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
