"""The drift-report step: the monitor's report that started a run, copied into the run's artifacts."""

from __future__ import annotations

from pathlib import Path


def copy_drift_report(uri: str, path: Path) -> None:
    """The monitor's report (a path, or a URL the monitor serves) copied into this run's artifact."""
    import fsspec

    try:
        with fsspec.open(uri, "rb") as source:
            path.write_bytes(source.read())
    except (FileNotFoundError, OSError) as error:
        raise FileNotFoundError(f"drift report {uri} cannot be read: {error}") from error
