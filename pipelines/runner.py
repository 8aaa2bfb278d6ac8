"""Run the training pipeline: locally with kfp.local, or on a Kubeflow Pipelines cluster with kfp.Client."""

from __future__ import annotations

import ast
import builtins
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from textclf.config import PipelineConfig, load_config
from textclf.monitor.retraining import LaunchedRun
from textclf.names import PIPELINE_NAME

COMPILED_PIPELINE = Path(__file__).parent / "compiled" / "training_pipeline.yaml"


_DICT_DEFAULT_COMMENT = re.compile(r"^(#\s+\w+: dict \[Default: )(\{.*\})\]$", re.MULTILINE)


def _sorted_dict_defaults(spec: str) -> str:
    """The spec with the dict defaults of its header comments in key order. kfp 2.17.3 writes them from a protobuf
    Struct (`_write_pipeline_spec_comments` in kfp/compiler/pipeline_spec_builder.py), whose keys come out in hash
    order: without this, two compilations of one pipeline differ."""
    return _DICT_DEFAULT_COMMENT.sub(
        lambda match: f"{match[1]}{dict(sorted(ast.literal_eval(match[2]).items()))}]", spec
    )


def compile_pipeline(path: Path = COMPILED_PIPELINE) -> Path:
    from kfp import compiler

    from textclf.pipelines.training_pipeline import training_pipeline

    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(training_pipeline, str(path))
    path.write_text(_sorted_dict_defaults(path.read_text()))
    return path


@contextmanager
def print_kept() -> Iterator[None]:
    """Put `builtins.print` back as it was. kfp.local 2.17.3 indents a step's output by swapping `builtins.print`
    and restoring the one it found (kfp/local/logging_utils.py `indented_print`, entered per task in
    kfp/local/task_dispatcher.py); ParallelFor iterations run on threads (kfp/local/orchestrator/
    enhanced_dag_orchestrator.py), so a step that ends after another started can restore that one's indenting
    print, and every later `print` of this process gains four spaces."""
    original = builtins.print
    try:
        yield
    finally:
        builtins.print = original


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
    with print_kept():
        training_pipeline(**config.parameters())


# KFP's v2beta1 RuntimeState (backend/api/v2beta1/run.proto at 2.14.3): a run ends in one of these. The kfp
# client's own wait_for_run_completion returns on FAILED without raising and never ends on CANCELED.
FINISHED_STATES = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"})


class PipelineRunFailed(RuntimeError):
    """A Kubeflow Pipelines run ended in a state other than SUCCEEDED, or did not end in time."""


def wait_for_run(
    get_run: Callable[[str], Any],
    run_id: str,
    timeout_seconds: int,
    poll_seconds: float = 10,
) -> None:
    """Return once the run SUCCEEDED; raise `PipelineRunFailed` with the run's state and error otherwise."""
    clock, sleep = time.monotonic, time.sleep
    deadline = clock() + timeout_seconds
    while True:
        run = get_run(run_id)
        state = str(run.state or "RUNTIME_STATE_UNSPECIFIED").upper()
        if state == "SUCCEEDED":
            return
        if state in FINISHED_STATES:
            error = getattr(run, "error", None)
            detail = f": {error.message}" if error is not None and getattr(error, "message", None) else ""
            raise PipelineRunFailed(f"run {run_id} ended {state}{detail}")
        if clock() >= deadline:
            raise PipelineRunFailed(f"run {run_id} still {state} after {timeout_seconds}s")
        sleep(poll_seconds)


def submit(
    config: PipelineConfig,
    host: str,
    experiment: str,
    wait: bool,
    timeout_seconds: int,
    announce: Callable[[str], None] | None = None,
) -> str:
    """Compile and submit to a Kubeflow Pipelines endpoint; returns the KFP run id. `announce` hears the run id
    as soon as the run exists. With `wait`, returns only when the run SUCCEEDED and raises `PipelineRunFailed`
    otherwise."""
    import tempfile

    import kfp

    from textclf.evaluate.behaviour import inline_spec

    client = kfp.Client(host=host)
    # The steps run in pods that cannot read the submitter's files: a suite file travels as its text.
    checks = config.checks.model_copy(update={"behaviour_tests": inline_spec(config.checks.behaviour_tests)})
    with tempfile.TemporaryDirectory() as scratch:
        package = compile_pipeline(Path(scratch) / f"{PIPELINE_NAME}.yaml")
        run = client.create_run_from_pipeline_package(
            str(package),
            arguments=config.model_copy(update={"checks": checks}).parameters(),
            experiment_name=experiment,
            enable_caching=False,
        )
    if announce is not None:
        announce(run.run_id)
    if wait:
        wait_for_run(client.get_run, run.run_id, timeout_seconds)
    return run.run_id


def launch_on_cluster(host: str, training_config: Path | None, overrides: dict[str, Any]) -> LaunchedRun:
    """A retraining run the monitor starts: the compiled training pipeline on Kubeflow Pipelines, not waited for
    (the `ClusterLauncher` the composition root hands the monitor)."""
    settings = load_config(training_config, overrides)
    run_id = submit(settings, host, settings.experiment_name, wait=False, timeout_seconds=0)
    return LaunchedRun("kfp", run_id, f"{host}/#/runs/details/{run_id}")
