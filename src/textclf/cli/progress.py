"""`textclf run`'s quiet output: everything kfp.local and the steps print goes to a per-run log file, and a person
sees one line per step (state, elapsed time, the step's headline result) as the run goes."""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions
from rich.live import Live
from rich.text import Text

# kfp.local's own lines (kfp/local/task_dispatcher.py of the kfp SDK that pyproject.toml pins, 2.17.3: `Executing
# task 'NAME'`, `Task 'NAME' finished with status SUCCESS`; a failed task raises instead of logging) and the KFP
# executor's (kfp/dsl/executor_main.py: `Wrote executor output file to PATH.`). Task names are coloured with ANSI codes.
# tests/unit/test_quiet_run.py reads them from a real kfp.local run.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
TASK_STARTED = re.compile(r"Executing task '(?P<task>[^']+)'")
TASK_SUCCEEDED = re.compile(r"Task '(?P<task>[^']+)' finished with status SUCCESS")
EXECUTOR_OUTPUT_WRITTEN = re.compile(r"Wrote executor output file to (?P<path>\S+?)\.?$")
# The last lines of a step's output shown when it fails.
FAILURE_TAIL_LINES = 25
HEADLINE_WIDTH = 100


@dataclass
class StepProgress:
    name: str
    started: float
    finished: float | None = None
    state: str = "running"
    headline: str = ""
    executor_output: Path | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=FAILURE_TAIL_LINES))

    def elapsed(self, now: float) -> float:
        return (self.finished or now) - self.started


def _metadata(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: entry["artifacts"][0].get("metadata", {})
        for name, entry in output.get("artifacts", {}).items()
        if entry.get("artifacts")
    }


def _number(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def step_headline(task: str, output: dict[str, Any]) -> str:
    """The one result a person wants from each step of the training pipeline, read from the step's KFP executor
    output (its output parameters and its artifacts' metadata); any other step shows its output parameters."""
    parameters = output.get("parameterValues", {})
    metadata = _metadata(output)
    result = parameters.get("Output")
    if task == "ingest" and "split_sizes" in parameters:
        return " · ".join(f"{split} {int(rows):,}" for split, rows in parameters["split_sizes"].items()) + " rows"
    if task == "preprocess" and "train_data" in metadata:
        train = metadata["train_data"]
        return (
            f"{int(train.get('rows', 0)):,} training texts, {int(train.get('emptied_by_cleaning', 0))} emptied by "
            f"cleaning, {int(train.get('truncated', 0))} truncated"
        )
    if task == "plan-tuning" and isinstance(result, list):
        return f"{len(result)} tuning worker{'s' if len(result) != 1 else ''}"
    if task == "tune-trials" and result is not None:
        return f"ran {int(result)} trial{'s' if int(result) != 1 else ''}"
    if task == "tune" and isinstance(result, dict):
        return "best: " + ", ".join(f"{name} {_number(value)}" for name, value in result.items())
    if task == "cross-validate":
        return f"mean accuracy {result:.4f}" if result else "off (folds 0)"
    if task == "train" and "model" in metadata:
        model = metadata["model"]
        return (
            f"validation accuracy {model.get('validation_accuracy', 0):.4f}, {model.get('epochs_run', '?')} epochs "
            f"in {model.get('train_seconds', 0):.0f} s"
        )
    if task == "evaluate" and "accuracy" in parameters:
        return (
            f"test accuracy {parameters['accuracy']:.4f}, macro F1 {parameters.get('macro_f1', 0):.4f} "
            f"(TF-IDF + LR {parameters.get('tfidf_accuracy', 0):.4f})"
        )
    if task == "register":
        return f"version {result}"
    if task == "promotion-gate":
        return "promote" if result else "keep the champion"
    if task == "promote":
        return f"champion is v{result}"
    if result is not None:
        return str(result)
    return ", ".join(f"{name} {_number(value)}" for name, value in parameters.items())


class StepLog(io.TextIOBase):
    """A text stream for everything a kfp.local run prints: each line goes to the log file, and the lines that
    start and end a step update `steps` and call `on_change`."""

    def __init__(self, log: TextIO, on_change: Callable[[], None] = lambda: None):
        self.log = log
        self.on_change = on_change
        self.steps: list[StepProgress] = []
        self._partial = ""

    @property
    def current(self) -> StepProgress | None:
        """The step that started last among those still running (the iterations of a ParallelFor run at once)."""
        running = self._running()
        return running[-1] if running else None

    def _running(self, name: str | None = None) -> list[StepProgress]:
        return [step for step in self.steps if step.state == "running" and name in (None, step.name)]

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log.write(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._read(ANSI_ESCAPE.sub("", line).rstrip())
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def _read(self, line: str) -> None:
        if started := TASK_STARTED.search(line):
            self.steps.append(StepProgress(started["task"], time.monotonic()))
            self.on_change()
            return
        step = self.current
        if step is None:
            return
        if succeeded := TASK_SUCCEEDED.search(line):
            # kfp.local names a loop's iterations alike: the one that wrote its output first finishes first.
            same_name = self._running(succeeded["task"])
            if same_name:
                done = next((step for step in same_name if step.executor_output), same_name[0])
                done.finished, done.state = time.monotonic(), "done"
                done.headline = self._headline(done)
                self.on_change()
            return
        if written := EXECUTOR_OUTPUT_WRITTEN.search(line):
            path = Path(written["path"])
            writer = next((step for step in self._running(path.parent.name) if step.executor_output is None), step)
            writer.executor_output = path
        # kfp.local indents a step's own output by four spaces and closes each step with a line of dashes.
        if line.strip() and line.strip("-"):
            step.tail.append(line.removeprefix("    "))

    @staticmethod
    def _headline(step: StepProgress) -> str:
        try:
            output = json.loads(step.executor_output.read_text()) if step.executor_output else {}
        except (OSError, ValueError):
            return ""
        headline = " ".join(step_headline(step.name, output).split())
        return headline if len(headline) <= HEADLINE_WIDTH else headline[: HEADLINE_WIDTH - 1] + "…"

    def fail_running(self) -> None:
        """Mark the steps still running as failed: a failed kfp.local run stops them all."""
        for step in self._running():
            step.finished, step.state = time.monotonic(), "failed"
        self.on_change()


STATE_MARKS = {"running": ("…", "cyan"), "done": ("✓", "green"), "failed": ("✗", "red")}


def step_line(step: StepProgress, now: float, width: int) -> Text:
    """One line per step, cut with an ellipsis to `width` rather than wrapped."""
    mark, colour = STATE_MARKS[step.state]
    line = Text.assemble((mark, colour), f" {step.name:<15} {step.elapsed(now):6.1f} s  {step.headline}")
    line.truncate(width, overflow="ellipsis")
    return line


class StepLines:
    """The steps so far, rendered when Rich redraws them: the running step's time keeps counting."""

    def __init__(self, stream: StepLog):
        self.stream = stream

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        now = time.monotonic()
        for step in self.stream.steps:
            yield step_line(step, now, options.max_width)


@contextlib.contextmanager
def quiet_run(console: Console, log_path: Path) -> Iterator[StepLog]:
    """Send everything printed inside the block to `log_path` and show the steps on `console`: redrawn in place
    on a terminal, one line per finished step elsewhere (a CI log, a pipe). A step running when the block raises
    is marked failed."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # The same console pinned to the stream it writes to now: one on sys.stderr would follow the redirection.
    screen = Console(
        file=console.file,
        width=console.width,
        force_terminal=console.is_terminal,
        force_jupyter=console.is_jupyter,
        color_system=console.color_system,
    )
    printed = 0

    def show() -> None:
        nonlocal printed
        if live is not None:
            live.refresh()
            return
        for step in stream.steps[printed:]:
            if step.state == "running":
                break
            screen.print(step_line(step, time.monotonic(), screen.width))
            printed += 1

    with open(log_path, "w", encoding="utf-8") as log:
        stream = StepLog(log, on_change=show)
        live = (
            Live(StepLines(stream), console=screen, refresh_per_second=1, redirect_stdout=False, redirect_stderr=False)
            if screen.is_terminal
            else None
        )
        with live or contextlib.nullcontext(), contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            try:
                yield stream
            except BaseException:
                stream.fail_running()
                raise


def failure_report(step: StepProgress | None, log_path: Path) -> Text:
    """What a person needs when a step fails: its last lines and where the whole log is."""
    report = Text()
    if step is not None and step.tail:
        report.append(f"last lines of {step.name}:\n", style="bold")
        report.append("\n".join(step.tail) + "\n")
    report.append(f"the whole log: {log_path}")
    return report
