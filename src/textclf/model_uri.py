"""Resolve a model reference (registry alias, run URI or directory) to a local model directory."""

from __future__ import annotations

from pathlib import Path


def resolve_model_dir(reference: str, tracking_uri: str, download_to: Path | None = None) -> Path:
    """`models:/NAME@ALIAS`, `models:/NAME/VERSION` and `runs:/ID/PATH` download through MLflow;
    anything else must be a model directory on disk."""
    if reference.startswith(("models:/", "runs:/")):
        import mlflow

        from textclf.tracking import configure

        configure(tracking_uri)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=reference, dst_path=str(download_to) if download_to else None
        )
        return Path(local)
    directory = Path(reference).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"model {reference!r} is neither a models:/ or runs:/ URI nor a directory on disk")
    return directory
