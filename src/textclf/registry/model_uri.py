"""Resolve a model reference (registry alias, run URI or directory) to a local model directory."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ResolvedModel:
    directory: Path
    version: str
    """The registry version for models:/ references; otherwise a digest of the weights."""


def resolve_model_dir(reference: str, tracking_uri: str, download_to: Path | None = None) -> Path:
    """`models:/NAME@ALIAS`, `models:/NAME/VERSION` and `runs:/ID/PATH` download through MLflow (an MLflow model
    or, registered before textclf logged those, the raw directory); anything else must be a model directory on
    disk: a model directory, or an MLflow model (downloaded) that holds one."""
    if reference.startswith(("models:/", "runs:/")):
        import mlflow

        from textclf.registry.tracking import configure

        configure(tracking_uri)
        from textclf.registry.model_dir import ModelDirectory

        local = mlflow.artifacts.download_artifacts(
            artifact_uri=reference, dst_path=str(download_to) if download_to else None
        )
        return ModelDirectory.located_in(Path(local)).path
    directory = Path(reference).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"model {reference!r} is neither a models:/ or runs:/ URI nor a directory on disk")
    from textclf.registry.model_dir import ModelDirectory

    # A model directory, or a downloaded MLflow model holding one.
    return ModelDirectory.located_in(directory).path


def registry_version(reference: str, tracking_uri: str) -> str | None:
    """The version number a `models:/NAME@ALIAS` or `models:/NAME/VERSION` reference points at now."""
    if not reference.startswith("models:/"):
        return None
    from mlflow.tracking import MlflowClient

    name_and_pointer = reference.removeprefix("models:/")
    if "@" in name_and_pointer:
        name, alias = name_and_pointer.split("@", 1)
        return str(MlflowClient(tracking_uri, tracking_uri).get_model_version_by_alias(name, alias).version)
    return name_and_pointer.rsplit("/", 1)[-1]


def weights_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin")):
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256-{digest.hexdigest()[:12]}"


def resolve_model(reference: str, tracking_uri: str, download_to: Path | None = None) -> ResolvedModel:
    """The reference's directory and the version it stands for, resolved at this moment (an alias may move)."""
    version = registry_version(reference, tracking_uri)
    if version is not None and "@" in reference:
        # Pin the alias to the version just read, so the download cannot race a promotion.
        reference = f"{reference.split('@', 1)[0]}/{version}"
    directory = resolve_model_dir(reference, tracking_uri, download_to)
    return ResolvedModel(directory, version or weights_digest(directory))
