"""`textclf run`'s quiet output: kfp.local's own lines become one line per step; everything goes to the log."""
# No `from __future__ import annotations`: kfp reads the tiny components' annotations as types.

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from textclf.cli.progress import StepLog, failure_report, quiet_run, step_headline


def _tiny_pipeline():
    from kfp import dsl

    @dsl.component
    def count_rows(rows: int) -> int:
        print("counting rows", flush=True)
        return rows * 2

    @dsl.component
    def break_down(rows: int) -> str:
        print("about to fail", flush=True)
        raise ValueError(f"cannot use {rows} rows: name the right column with --text-column")

    @dsl.pipeline(name="quiet-run-test")
    def pipeline(rows: int = 21):
        counted = count_rows(rows=rows)
        break_down(rows=counted.output)

    return pipeline


@pytest.mark.component
def test_a_real_kfp_local_run_shows_each_step_once_and_logs_everything(tmp_path: Path, capfd) -> None:
    from kfp import local

    screen = io.StringIO()
    log_path = tmp_path / "logs" / "run.log"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), raise_on_error=True)
    with pytest.raises(RuntimeError, match="break-down"), quiet_run(Console(file=screen, width=200), log_path) as steps:
        _tiny_pipeline()()

    counted, broken = steps.steps
    assert (counted.name, counted.state, counted.headline) == ("count-rows", "done", "42")
    assert broken.name == "break-down" and broken.state == "failed"
    assert any("name the right column with --text-column" in line for line in broken.tail)
    assert not any("counting rows" in line for line in broken.tail)
    shown = screen.getvalue().splitlines()
    assert len(shown) == 2 and shown[0].startswith("✓ count-rows") and shown[1].startswith("✗ break-down")
    log = log_path.read_text()
    assert "counting rows" in log and "about to fail" in log and "Executing task" in log
    printed = capfd.readouterr()
    assert "counting rows" not in printed.out + printed.err
    assert "the whole log: " + str(log_path) in failure_report(broken, log_path).plain


@pytest.mark.unit
def test_lines_split_across_writes_and_colour_codes_are_read() -> None:
    log = io.StringIO()
    changes = []
    stream = StepLog(log, on_change=lambda: changes.append(len(stream.steps)))
    stream.write("12:00:00 - INFO - Executing task \x1b[96m'ing")
    stream.write("est'\x1b[0m\n    some output\n    ")
    stream.write("more\n")
    assert [step.name for step in stream.steps] == ["ingest"] and stream.current is not None
    assert list(stream.current.tail) == ["some output", "more"]
    stream.write("Task \x1b[96m'ingest'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m\n")
    assert stream.current is None and stream.steps[0].state == "done" and changes == [1, 1]
    assert "some output" in log.getvalue()


@pytest.mark.unit
def test_a_non_terminal_shows_finished_steps_only_and_the_failed_one(tmp_path: Path) -> None:
    screen = io.StringIO()
    with pytest.raises(RuntimeError), quiet_run(Console(file=screen, width=120), tmp_path / "run.log"):
        print("Executing task 'ingest'")
        print("Task 'ingest' finished with status SUCCESS")
        print("Executing task 'train'")
        assert screen.getvalue().count("\n") == 1
        raise RuntimeError("train broke")
    lines = screen.getvalue().splitlines()
    assert [line.split()[:2] for line in lines] == [["✓", "ingest"], ["✗", "train"]]


def _executor_output(parameters: dict | None = None, **artifact_metadata: dict) -> dict:
    return {
        "parameterValues": parameters or {},
        "artifacts": {name: {"artifacts": [{"metadata": meta}]} for name, meta in artifact_metadata.items()},
    }


@pytest.mark.unit
@pytest.mark.parametrize(
    ("task", "output", "headline"),
    [
        ("ingest", _executor_output({"split_sizes": {"train": 1200, "validation": 150, "test": 150}}),
         "train 1,200 · validation 150 · test 150 rows"),
        ("preprocess", _executor_output(train_data={"rows": 55, "emptied_by_cleaning": 1, "truncated": 3}),
         "55 training texts, 1 emptied by cleaning, 3 truncated"),
        ("tune", _executor_output({"Output": {"learning_rate": 0.00012, "batch_size": 16}}),
         "best: learning_rate 0.00012, batch_size 16"),
        ("cross-validate", _executor_output({"Output": 0.0}), "off (folds 0)"),
        ("cross-validate", _executor_output({"Output": 0.91234}), "mean accuracy 0.9123"),
        ("train", _executor_output({"Output": 0.8}, model={"validation_accuracy": 0.8, "epochs_run": 3,
                                                          "train_seconds": 61.2}),
         "validation accuracy 0.8000, 3 epochs in 61 s"),
        ("evaluate", _executor_output({"accuracy": 0.9, "macro_f1": 0.85, "tfidf_accuracy": 0.8}),
         "test accuracy 0.9000, macro F1 0.8500 (TF-IDF + LR 0.8000)"),
        ("register", _executor_output({"Output": "4"}), "version 4"),
        ("promotion-gate", _executor_output({"Output": False}), "keep the champion"),
        ("promote", _executor_output({"Output": "4"}), "champion is v4"),
        ("some-new-step", _executor_output({"rows": 3, "share": 0.5}), "rows 3, share 0.5"),
    ],
)  # fmt: skip
def test_each_step_has_a_headline(task: str, output: dict, headline: str) -> None:
    assert step_headline(task, output) == headline


@pytest.mark.unit
def test_the_iterations_of_a_parallel_for_each_finish_with_their_own_output(tmp_path: Path) -> None:
    """kfp.local runs a ParallelFor's iterations at once under one task name; each must end, with its own result."""
    outputs = {}
    for iteration, ran in ((0, 1), (1, 3)):
        path = tmp_path / f"for-loop-1-iteration-{iteration}" / "tune-trials" / "executor_output.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"parameterValues": {"Output": ran}}))
        outputs[iteration] = path
    stream = StepLog(io.StringIO())
    stream.write("Executing task 'tune-trials'\nExecuting task 'tune-trials'\n")
    assert [step.state for step in stream.steps] == ["running", "running"]
    stream.write(f"        [KFP Executor INFO]: Wrote executor output file to {outputs[1]}.\n")
    stream.write("Task 'tune-trials' finished with status SUCCESS\n")
    assert [step.state for step in stream.steps] == ["done", "running"] and stream.current is stream.steps[1]
    stream.write(f"        [KFP Executor INFO]: Wrote executor output file to {outputs[0]}.\n")
    stream.write("Task 'tune-trials' finished with status SUCCESS\n")
    assert stream.current is None
    assert [step.headline for step in stream.steps] == ["ran 3 trials", "ran 1 trial"]
    stream.write("Executing task 'tune-trials'\nExecuting task 'tune-trials'\n")
    stream.fail_running()
    assert [step.state for step in stream.steps[2:]] == ["failed", "failed"]


@pytest.mark.unit
def test_steps_that_end_out_of_order_leave_print_as_it_was() -> None:
    """Two kfp.local steps on ParallelFor threads, the first to start ending first: kfp's `indented_print` alone
    leaves the second step's indenting print in place; `print_kept` restores the original."""
    import builtins
    import threading

    from kfp.local.logging_utils import indented_print

    from textclf.pipelines.runner import print_kept

    original = builtins.print
    first_entered, second_entered, first_left = threading.Event(), threading.Event(), threading.Event()

    def first_step() -> None:
        with indented_print():
            first_entered.set()
            second_entered.wait(10)
        first_left.set()

    def second_step() -> None:
        first_entered.wait(10)
        with indented_print():
            second_entered.set()
            first_left.wait(10)

    def run_both() -> None:
        threads = [threading.Thread(target=first_step), threading.Thread(target=second_step)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)

    try:
        run_both()
        assert builtins.print is not original
    finally:
        builtins.print = original
    with print_kept():
        run_both()
    assert builtins.print is original
