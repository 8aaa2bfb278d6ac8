"""Parallel tuning trials: several worker processes on one Optuna RDB study, with the same outcome whichever
worker is faster, as many workers as there are, or a worker that dies midway."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.support.study_worker import score
from textclf.train import parallel_study
from textclf.train.parallel_study import best_trial, generation_start, open_study, run_trials
from textclf.train.tuning import prepare_study

pytestmark = pytest.mark.unit

REPOSITORY = Path(__file__).resolve().parents[2]
TRIALS = 8


def _start_worker(storage: str, seconds: float, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.study_worker", storage, "study", str(TRIALS), str(seconds), *extra],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(storage: str, generation_size: int, speeds: list[float]) -> tuple[list[tuple], list[int]]:
    """Run one worker process per speed on a fresh study; returns each trial (number, state, params, value) and
    how many trials each worker ran."""
    first = {"learning_rate": 1e-3, "batch_size": 32, "warmup_ratio": 0.06}
    study = open_study(storage, "study", seed=7, generation_size=generation_size, first_trial=first)
    workers = [_start_worker(storage, seconds) for seconds in speeds]
    ran = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-3000:]
        ran.append(int(out.strip().splitlines()[-1]))
    trials = [
        (trial.number, trial.state, trial.params, trial.value)
        for trial in study.trials
        if not trial.user_attrs.get("over_budget")
    ]
    return trials, ran


def test_the_outcome_does_not_depend_on_which_worker_is_faster_or_how_many_there_are(tmp_path: Path) -> None:
    first, ran_first = _run(f"sqlite:///{tmp_path / 'a.db'}", 2, [0.05, 0.6])
    second, ran_second = _run(f"sqlite:///{tmp_path / 'b.db'}", 2, [0.6, 0.05])
    alone, _ = _run(f"sqlite:///{tmp_path / 'c.db'}", 2, [0.01])
    assert all(count >= 1 for count in ran_first + ran_second), "both workers ran trials in both runs"
    assert [trial[0] for trial in first] == list(range(TRIALS))
    assert first == second == alone
    assert {state for _, state, _, _ in first} <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert len({tuple(sorted(params.items())) for _, _, params, _ in first}) == TRIALS, "every trial is new"


@pytest.mark.parametrize("trials", [3, 1])
def test_a_worker_that_dies_midway_does_not_stop_the_others(tmp_path: Path, monkeypatch, trials: int) -> None:
    """Its trial stops sending heartbeats, fails after the grace period, and the study still fills up, also when
    that trial alone made the study look full (a rerun after a killed run)."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    monkeypatch.setattr(parallel_study, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(parallel_study, "HEARTBEAT_GRACE_SECONDS", 2)
    study = open_study(storage, "study", seed=7, generation_size=2)
    dying = subprocess.Popen(
        [sys.executable, "-c", _DYING_WORKER.format(storage=storage, trials=trials)],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
    )
    assert dying.wait(timeout=60) == 3
    assert study.trials[0].state == optuna.trial.TrialState.RUNNING
    assert run_trials(study, score, trials) == trials
    states = [trial.state for trial in study.trials]
    assert states == [optuna.trial.TrialState.FAIL] + [optuna.trial.TrialState.COMPLETE] * trials


# The dying worker shortens the heartbeat like the test does: open_study reads the constants when it is called.
_DYING_WORKER = """
import os, optuna
from textclf.train import parallel_study
parallel_study.HEARTBEAT_SECONDS, parallel_study.HEARTBEAT_GRACE_SECONDS = 1, 2
study = parallel_study.open_study("{storage}", "study", seed=7)
def objective(trial):
    trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True)
    os._exit(3)
parallel_study.run_trials(study, objective, {trials})
"""


def test_a_full_study_gets_no_more_trials(tmp_path: Path) -> None:
    study = open_study(f"sqlite:///{tmp_path / 'optuna.db'}", "study", seed=7)
    assert run_trials(study, score, 2) == 2
    assert run_trials(study, score, 2) == 0 and len(study.trials) == 2


def test_the_best_trial_is_the_first_of_equals_and_a_resumed_study_keeps_its_generations(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = open_study(storage, "study", seed=7, generation_size=3)
    for value in (0.5, 0.9, 0.9, 0.1):
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=value))
    assert best_trial(study).number == 1
    assert open_study(storage, "study", seed=7, generation_size=5).user_attrs[parallel_study.GENERATION_SIZE_ATTR] == 3
    assert [generation_start(number, 3) for number in range(7)] == [0, 0, 0, 3, 3, 3, 6]


def test_the_first_trial_is_the_configured_recipe_and_later_runs_leave_it(tmp_path: Path) -> None:
    from textclf.train.trainer import TrainingParams
    from textclf.train.tuning import configured_point, suggest_params

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    params = TrainingParams(finetune="full", epochs=3)
    study = prepare_study(storage, "study", params, 2)
    assert run_trials(study, lambda trial: suggest_params(trial, params).learning_rate, 1) == 1
    assert study.trials[0].params == configured_point(params)
    changed = prepare_study(storage, "study", params.replace(learning_rate=1e-4), 2)
    assert changed.user_attrs[parallel_study.FIRST_TRIAL_ATTR] == configured_point(params)


def test_workers_on_one_machine_split_its_cpus_between_them() -> None:
    """Each local worker keeps its own CPUs (torch then starts a thread per CPU it has, not per CPU there is)."""
    import os

    script = (
        "import os; from textclf.runtime.cpu import share_cpus; share_cpus({}, {}); "
        "print(sorted(os.sched_getaffinity(0)))"
    )
    every = sorted(os.sched_getaffinity(0))
    shares = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", script.format(index, 2)], capture_output=True, text=True, check=True
            ).stdout
        )
        for index in (0, 1)
    ]
    if len(every) >= 2:
        assert not set(shares[0]) & set(shares[1]) and sorted(shares[0] + shares[1]) == every
    crowded = json.loads(
        subprocess.run(
            [sys.executable, "-c", script.format(len(every) + 1, len(every) + 2)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert len(crowded) == 1, "more workers than CPUs: each keeps one"
