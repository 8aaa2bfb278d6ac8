"""Drift checks in the monitoring service: one at a time, on a thread of their own.

A check takes seconds to minutes (a report, maybe a model load). Requests for one while one runs join it
instead of queueing behind it, and no check ever holds a thread of the pool that serves `/events` and
`/health`: forty concurrent `POST /checks` used to take every one of them, and liveness restarted the pod."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from textclf.monitor.check import CheckOutcome, DriftChecker
from textclf.monitoring.prometheus import MonitorMetrics

log = logging.getLogger(__name__)


def record_check(metrics: MonitorMetrics, outcome: CheckOutcome) -> None:
    decision = outcome.decision
    metrics.checks.labels(decision["decision"]).inc()
    metrics.last_check.set_to_current_time()
    for name, score in decision["scores"].items():
        metrics.drift_score.labels(name).set(math.nan if score["score"] is None else score["score"])
        metrics.drift_threshold.labels(name).set(score["threshold"])
    if decision["window"].get("live_accuracy") is not None:
        metrics.live_accuracy.set(decision["window"]["live_accuracy"])
    estimate = decision.get("estimate")
    if estimate is not None:
        metrics.estimated_accuracy.set(estimate["accuracy"])
        metrics.estimated_macro_f1.set(estimate["macro_f1"])
        for bound, value in zip(("lower", "upper"), estimate["accuracy_interval"], strict=True):
            metrics.estimated_accuracy_bound.labels(bound).set(value)
    if outcome.retraining and outcome.retraining.get("started"):
        metrics.retraining_runs.inc()


@dataclass(frozen=True)
class CheckTicket:
    """A check this process started: its number (per process, from 1) and when it started."""

    number: int
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_json(self) -> dict[str, Any]:
        return {"ticket": self.number, "started_at": self.started_at.isoformat()}


class CheckRunner:
    """Single flight: `request()` starts a check unless one is running, on the runner's own thread."""

    def __init__(self, checker: DriftChecker, metrics: MonitorMetrics):
        self.checker, self.metrics = checker, metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-check")
        self._numbers = itertools.count(1)
        self._guard = threading.Lock()
        self._running: tuple[CheckTicket, Future[CheckOutcome]] | None = None

    def start(self) -> tuple[CheckTicket, Future[CheckOutcome] | None]:
        """The new check's ticket and future, or the running check's ticket and None."""
        with self._guard:
            if self._running is not None and not self._running[1].done():
                return self._running[0], None
            ticket = CheckTicket(next(self._numbers))
            future = self._executor.submit(self._run)
            self._running = (ticket, future)
            return ticket, future

    def request(self) -> tuple[CheckTicket, asyncio.Future[CheckOutcome] | None]:
        """`start` for the event loop: the outcome as an awaitable, or None when a check was already running."""
        ticket, future = self.start()
        return ticket, asyncio.wrap_future(future) if future is not None else None

    def _run(self) -> CheckOutcome:
        outcome = self.checker.check()
        record_check(self.metrics, outcome)
        return outcome

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class CheckSchedule:
    """A check every `interval` seconds through the runner; a failed check is logged and the next runs."""

    def __init__(self, runner: CheckRunner, interval: float):
        self.runner, self.interval = runner, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drift-check-schedule", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            _, future = self.runner.start()
            if future is None:
                continue  # a requested check is running: this slot is taken by it
            try:
                future.result()
            except Exception:
                log.exception("scheduled drift check failed")
