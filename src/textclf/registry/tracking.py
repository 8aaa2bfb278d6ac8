"""MLflow tracking: the embedded sqlite store by default, any server through MLFLOW_TRACKING_URI."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_STORE_FILE = "mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"


def default_tracking_uri(workdir: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI where set; otherwise an sqlite store under the working directory."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(workdir or Path.cwd()).resolve() / DEFAULT_STORE_FILE}"


def configure(tracking_uri: str) -> None:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def ensure_experiment(name: str, tracking_uri: str) -> str:
    """The experiment's id, created where missing; local stores keep artifacts beside the database."""
    import mlflow

    configure(tracking_uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):
        store = Path(tracking_uri.removeprefix("sqlite:///"))
        artifact_location = (store.parent / DEFAULT_ARTIFACT_DIR).as_uri()
    return mlflow.create_experiment(name, artifact_location=artifact_location)


@contextmanager
def resume_run(tracking_uri: str, run_id: str) -> Iterator[Any]:
    """Re-enter the pipeline's MLflow run from another step (another process, maybe another pod)."""
    import mlflow

    configure(tracking_uri)
    with mlflow.start_run(run_id=run_id) as run:
        yield run


@contextmanager
def nested_run(run_name: str) -> Iterator[Any]:
    """A run nested under the active one and in its experiment, or a top-level run where none is active. The
    experiment is passed on because a run resumed by id (as each pipeline step resumes its run) sets none in this
    process, and a bare nested run would land in the default experiment."""
    import mlflow

    active = mlflow.active_run()
    experiment_id = active.info.experiment_id if active is not None else None
    with mlflow.start_run(run_name=run_name, nested=active is not None, experiment_id=experiment_id) as run:
        yield run


def log_flat_metrics(metrics: dict[str, Any], prefix: str, step: int | None = None) -> None:
    """Log the numeric leaves of a nested metrics dict as `prefix_key_subkey`."""
    import mlflow

    flat: dict[str, float] = {}

    def walk(values: dict[str, Any], name: str) -> None:
        for key, value in values.items():
            metric = f"{name}_{key}".replace(" ", "_").replace("/", "_")
            if isinstance(value, dict):
                walk(value, metric)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                flat[metric] = float(value)

    walk(metrics, prefix)
    mlflow.log_metrics(flat, step=step)


def git_commit(repository: Path | None = None) -> str:
    """The commit the code ran from: GIT_COMMIT (set in images) or `git rev-parse`, else "unknown"."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repository or Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip()
