"""One Optuna study shared by any number of worker processes or pods, with an outcome that does not depend on
which worker finishes first.

Trials are numbered in the order they are created (the RDB storage hands numbers out atomically) and grouped in
generations of `generation_size` consecutive numbers. A trial samples its parameters and is judged by the pruner
against the finished trials of the earlier generations only, with a random stream seeded by its own number, and
starts once those trials have finished. Its parameters, and so its score, are therefore the same whichever worker
runs it and whatever order the trials of its generation finish in; the best trial is the highest score, the
lowest number on a tie. The price is a pause at each generation boundary, while its last trials finish."""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from textclf.names import OPTUNA_STORAGE_MOUNT, OPTUNA_STORAGE_SECRET

# A study records its generation size once, when created, so a resumed study keeps it whatever the new run asks.
GENERATION_SIZE_ATTR = "textclf_generation_size"
# Trial 0's parameters, recorded when the study is created. Not Optuna's enqueue_trial: a worker takes a waiting
# trial by reading it WAITING under SELECT ... FOR UPDATE and setting it RUNNING (optuna 5.0,
# storages/_rdb/storage.py, set_trial_state_values); SQLite has no row locks, so two workers took the same trial
# and both told it (seen in tests/unit/test_parallel_study.py under load).
FIRST_TRIAL_ATTR = "textclf_first_trial"
# A worker whose pod or process died stops sending heartbeats; after the grace period its trial counts as failed
# (and is run again), so the other workers do not wait for it for ever.
HEARTBEAT_SECONDS = 20
HEARTBEAT_GRACE_SECONDS = 90
WAIT_POLL_SECONDS = 0.5
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


class TrialsOverBudget(Exception):
    """The study already has as many finished or running trials as it asked for."""


@contextmanager
def _heartbeats() -> Iterator[None]:
    # Optuna marks its heartbeat API experimental (since 2.9) and warns on every use; it is what we rely on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


class NoSharedStorage(RuntimeError):
    """A step in a cluster was left to a SQLite file that the other tuning pods cannot see."""


def storage_url(configured: str, mount: Path = Path(OPTUNA_STORAGE_MOUNT)) -> str:
    """The study's RDB URL: the one configured, else the mounted Secret's (`url`), else a SQLite file in the
    working directory, which a Kubernetes pod refuses: each tuning step runs in a pod of its own."""
    if configured:
        return configured
    mounted = mount / "url"
    if mounted.is_file() and mounted.read_text().strip():
        return mounted.read_text().strip()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise NoSharedStorage(
            "tuning in a cluster needs an Optuna storage every tuning pod reaches: set the pipeline parameter "
            f"optuna_storage to a PostgreSQL URL, or create the Secret {OPTUNA_STORAGE_SECRET} (key `url`) in the "
            "pipeline namespace (the Helm chart does, with postgresql.enabled)"
        )
    return f"sqlite:///{Path.cwd().resolve() / 'optuna.db'}"


def storage_for(url: str) -> optuna.storages.RDBStorage:
    """The RDB storage workers share, with heartbeats; SQLite waits for its write lock instead of failing."""
    engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    with _heartbeats():
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=HEARTBEAT_GRACE_SECONDS,
        )


def generation_start(number: int, generation_size: int) -> int:
    """The first trial number of `number`'s generation."""
    return number - number % generation_size


def _trial_seed(seed: int, number: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{number}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _history(study: optuna.Study, before: int) -> optuna.Study:
    """An in-memory copy of the study holding its finished trials numbered below `before`."""
    # Optuna logs every in-memory study it creates; these copies are internal.
    with _quiet("optuna.storages._in_memory"):
        snapshot = optuna.create_study(direction=study.direction)
    snapshot.add_trials([trial for trial in study.get_trials(deepcopy=False, states=COUNTED) if trial.number < before])
    return snapshot


class GenerationSampler(BaseSampler):
    """TPE (independent sampling, Optuna's defaults) fitted on the earlier generations' trials only; trial 0 takes
    the parameters the study recorded for it (`FIRST_TRIAL_ATTR`) where it has them."""

    def __init__(self, seed: int, generation_size: int) -> None:
        self.seed = seed
        self.generation_size = generation_size
        self._snapshots: dict[int, optuna.Study] = {}

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        if trial.number == 0:
            first = study.user_attrs.get(FIRST_TRIAL_ATTR, {})
            if param_name in first:
                return first[param_name]
        history = self._snapshots.get(trial.number)
        if history is None:
            history = _history(study, generation_start(trial.number, self.generation_size))
            self._snapshots = {trial.number: history}
        sampler = TPESampler(seed=_trial_seed(self.seed, trial.number, param_name))
        return sampler.sample_independent(history, trial, param_name, param_distribution)


class GenerationPruner(optuna.pruners.BasePruner):
    """`inner`, judging a trial against the earlier generations' trials only."""

    def __init__(self, inner: optuna.pruners.BasePruner, generation_size: int) -> None:
        self.inner = inner
        self.generation_size = generation_size

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.inner.prune(_history(study, generation_start(trial.number, self.generation_size)), trial)


def open_study(
    storage: str,
    study_name: str,
    seed: int,
    generation_size: int = 1,
    first_trial: dict[str, Any] | None = None,
) -> optuna.Study:
    """Create the study or load it, with the generation size (and trial 0's parameters) it was created with.
    `storage` "" resolves as `storage_url` says. Create it once, before workers start, for `first_trial` to apply."""
    shared = storage_for(storage_url(storage))
    probe = optuna.create_study(study_name=study_name, storage=shared, direction="maximize", load_if_exists=True)
    size = probe.user_attrs.get(GENERATION_SIZE_ATTR)
    if size is None:
        probe.set_user_attr(GENERATION_SIZE_ATTR, generation_size)
        size = generation_size
        if first_trial and not probe.trials:
            probe.set_user_attr(FIRST_TRIAL_ATTR, first_trial)
    return optuna.load_study(
        study_name=study_name,
        storage=shared,
        sampler=GenerationSampler(seed, int(size)),
        pruner=GenerationPruner(optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0), int(size)),
    )


def wait_for_earlier_generations(study: optuna.Study, number: int, poll_seconds: float = WAIT_POLL_SECONDS) -> None:
    """Block until every trial of the generations before `number`'s has finished (trials of dead workers fail
    after the heartbeat grace period)."""
    start = generation_start(number, study.user_attrs[GENERATION_SIZE_ATTR])
    while True:
        pending = [
            trial for trial in study.get_trials(deepcopy=False) if trial.number < start and trial.state not in FINISHED
        ]
        if not pending:
            return
        with _heartbeats():
            optuna.storages.fail_stale_trials(study)
        time.sleep(poll_seconds)


def _counted_or_running_before(study: optuna.Study, number: int) -> int:
    states = (*COUNTED, TrialState.RUNNING, TrialState.WAITING)
    return sum(trial.number < number for trial in study.get_trials(deepcopy=False, states=states))


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    trials: int,
    poll_seconds: float = WAIT_POLL_SECONDS,
) -> int:
    """One worker: run trials until the study holds `trials` finished (complete or pruned) ones. While the
    trials other workers are running would fill it, wait for them: one that fails (or whose worker died: its
    heartbeat stops) is replaced. Returns how many trials this worker ran. A trial created past the budget (two
    workers asked at once for the last one) fails at once, marked `over_budget`, and never counts."""
    over_budget = False

    def guarded(trial: optuna.Trial) -> float:
        nonlocal over_budget
        if _counted_or_running_before(study, trial.number) >= trials:
            over_budget = True
            trial.set_user_attr("over_budget", True)
            raise TrialsOverBudget(f"trial {trial.number}: the study already has {trials} trials")
        wait_for_earlier_generations(study, trial.number, poll_seconds)
        return objective(trial)

    ran = 0
    while True:
        finished = len(study.get_trials(deepcopy=False, states=COUNTED))
        if finished >= trials:
            return ran
        if _counted_or_running_before(study, 1 << 62) >= trials:
            with _heartbeats():
                optuna.storages.fail_stale_trials(study)
            time.sleep(poll_seconds)
            continue
        over_budget = False
        study.optimize(guarded, n_trials=1, catch=(TrialsOverBudget,))
        ran += not over_budget


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The complete trial with the highest value; on a tie, the lowest number (it was created first)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda trial: (trial.value, -trial.number), default=None)
