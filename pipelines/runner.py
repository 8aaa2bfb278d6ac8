"""Run the training pipeline: locally with kfp.local, or on a Kubeflow Pipelines cluster with kfp.Client."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from textclf.config import PipelineConfig, load_config
from textclf.monitor.retraining import LaunchedRun
from textclf.names import PIPELINE_NAME

COMPILED_PIPELINE = Path(__file__).parent / "compiled" / "training_pipeline.yaml"


def compile_pipeline(path: Path = COMPILED_PIPELINE) -> Path:
    from kfp import compiler

    from textclf.pipelines.training_pipeline import training_pipeline

    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(training_pipeline, str(path))
    return path


def run_local(config: PipelineConfig, pipeline_root: Path) -> None:
    """Run every step as a subprocess of this Python environment (the `textclf run` default)."""
    from kfp import local

    from textclf.pipelines.training_pipeline import training_pipeline

    pipeline_root.mkdir(parents=True, exist_ok=True)
    # Step output is streamed line by line; a progress bar redrawn ten times a second floods it.
    os.environ.setdefault("TQDM_MININTERVAL", "10")
    # The components image holds this same package, which is what the warning cannot know.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task", category=RuntimeWarning)
    # Resource requests and display names are for the cluster.
    warnings.filterwarnings("ignore", message="Task .* have no effect in the current", category=UserWarning)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=True)
    training_pipeline(**config.model_dump())


def submit(config: PipelineConfig, host: str, experiment: str, wait: bool, timeout_seconds: int) -> str:
    """Compile and submit to a Kubeflow Pipelines endpoint; returns the KFP run id."""
    import tempfile

    import kfp

    client = kfp.Client(host=host)
    with tempfile.TemporaryDirectory() as scratch:
        package = compile_pipeline(Path(scratch) / f"{PIPELINE_NAME}.yaml")
        run = client.create_run_from_pipeline_package(
            str(package),
            arguments=config.model_dump(),
            experiment_name=experiment,
            enable_caching=False,
        )
    if wait:
        client.wait_for_run_completion(run.run_id, timeout=timeout_seconds)
    return run.run_id


def launch_on_cluster(host: str, training_config: Path | None, overrides: dict[str, Any]) -> LaunchedRun:
    """A retraining run the monitor starts: the compiled training pipeline on Kubeflow Pipelines, not waited for
    (the `ClusterLauncher` the composition root hands the monitor)."""
    settings = load_config(training_config, overrides)
    run_id = submit(settings, host, settings.experiment_name, wait=False, timeout_seconds=0)
    return LaunchedRun("kfp", run_id, f"{host}/#/runs/details/{run_id}")
