"""Retraining runs the drift monitor starts: the episode key, the run's data, and the two ways to launch it.

One run per drift episode: the key names the served model version and how many runs it already caused, so
checks racing on the same drift compute the same key and the store lets only one claim it; a later episode
of the same version (after the cooldown, when its challenger was not promoted) gets the next number.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from textclf.data.sources import LABEL, TEXT, DataSource, load_source, validate_frame

DATA_SUFFIXES = (".csv", ".jsonl", ".parquet")


def episode_key(model_name: str, model_version: str, runs_before: int) -> str:
    return f"{model_name}/{model_version}/episode-{runs_before}"


def _held_out(request_id: str, index: int, fraction: float) -> bool:
    """A stable coin per prediction: the same feedback lands on the same side in every retraining run."""
    digest = hashlib.sha256(f"{request_id}\x1f{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass(frozen=True)
class RetrainingData:
    extra_train: Path
    drift_window: Path
    rows: dict[str, int]


def prepare_retraining_data(
    labelled: pd.DataFrame,
    new_data_dir: Path | None,
    out_dir: Path,
    holdout_fraction: float,
    classes: Sequence[str],
) -> RetrainingData:
    """Split the feedback-labelled predictions into rows to train on and a held-out drift window the gate
    judges both models on (never trained on), and add every labelled file found in `new_data_dir`.
    Feedback naming no class of the served model (a typo, a retired class) stays in the store but is left
    out: it would add a class the champion cannot be compared on."""
    out_dir.mkdir(parents=True, exist_ok=True)
    known = labelled["feedback_label"].astype(str).isin(set(classes))
    unknown_classes = int((~known).sum())
    labelled = labelled[known]
    feedback = pd.DataFrame(
        {
            TEXT: labelled[TEXT].astype(str),
            LABEL: labelled["feedback_label"].astype(str),
            "held_out": [
                _held_out(str(r), int(i), holdout_fraction)
                for r, i in zip(labelled["request_id"], labelled["index"], strict=True)
            ],
        }
    )
    parts = [feedback.loc[~feedback["held_out"], [TEXT, LABEL]]]
    new_files = sorted(p for p in new_data_dir.iterdir() if p.suffix in DATA_SUFFIXES) if new_data_dir else []
    parts += [validate_frame(load_source(DataSource(str(path)))) for path in new_files]
    extra_train = pd.concat(parts, ignore_index=True)
    window = feedback.loc[feedback["held_out"], [TEXT, LABEL]]
    extra_train_path, window_path = out_dir / "extra_train.csv", out_dir / "drift_window.csv"
    extra_train.to_csv(extra_train_path, index=False)
    window.to_csv(window_path, index=False)
    feedback_train = int((~feedback["held_out"]).sum())
    rows = {
        "extra_train": len(extra_train),
        "feedback_train": feedback_train,
        "drift_window": len(window),
        "new_files": len(new_files),
        "new_file_rows": len(extra_train) - feedback_train,
        "feedback_with_unknown_class": unknown_classes,
    }
    return RetrainingData(extra_train_path, window_path, rows)


@dataclass(frozen=True)
class LaunchedRun:
    backend: str
    run_id: str
    detail: str
    process: subprocess.Popen | None = None


ClusterLauncher = Callable[[str, Path | None, dict[str, Any]], LaunchedRun]
"""Starts a run of the training pipeline on a Kubeflow Pipelines host: (host, training config, overrides).
The core cannot import KFP; `textclf.pipelines.runner.launch_on_cluster` is the one the monitor is given."""


def launch_local(training_config: Path | None, workdir: Path, overrides: dict[str, Any], log_path: Path) -> LaunchedRun:
    """`textclf run` (kfp.local) in a background process of its own: the monitor keeps answering meanwhile."""
    command = [sys.executable, "-m", "textclf.cli", "run", "--workdir", str(workdir)]
    if training_config is not None:
        command += ["--config", str(training_config)]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return LaunchedRun("local", f"local-pid-{process.pid}", f"log: {log_path}", process)


GATE_TAGS = ("promotion_decision", "promotion_reason", "registered_version", "deploy_outcome")
"""What the pipeline's register, gate and deploy steps tag a training run with."""


def gate_outcomes(tracking_uri: str, episode_keys: Sequence[str]) -> dict[str, dict[str, str]]:
    """For each retraining run (by its episode key, the `textclf.trigger` tag of the pipeline's MLflow run): its
    MLflow run id and what the promotion gate and the deploy step decided, as far as the run has got. Episodes
    whose run has not reached MLflow yet are left out."""
    if not episode_keys:
        return {}
    import mlflow

    from textclf.registry.tracking import configure
    from textclf.steps.ingest import TRIGGER_TAG

    configure(tracking_uri)
    wanted = set(episode_keys)
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{TRIGGER_TAG}` LIKE '%/episode-%'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    outcomes: dict[str, dict[str, str]] = {}
    for run in runs:
        key = run.data.tags.get(TRIGGER_TAG, "")
        if key in wanted:
            tags = run.data.tags
            outcomes[key] = {
                "mlflow_run_id": run.info.run_id,
                **{name: tags[name] for name in GATE_TAGS if name in tags},
            }
    return outcomes
