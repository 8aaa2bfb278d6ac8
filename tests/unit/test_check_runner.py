"""One drift check at a time: requests while one runs get its ticket at once instead of queueing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from textclf.monitor.check import CheckOutcome
from textclf.monitoring.checks import CheckRunner
from textclf.monitoring.prometheus import MonitorMetrics

pytestmark = pytest.mark.unit


class SlowChecker:
    """Checks that last until the test releases them, counting how many ran."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.runs = 0

    def check(self) -> CheckOutcome:
        self.runs += 1
        self.release.wait(timeout=30)
        decision = {"decision": "no_drift", "reason": "", "scores": {}, "window": {}}
        return CheckOutcome(self.runs, decision, "", None)


def test_forty_concurrent_requests_start_one_check_and_all_answer_at_once() -> None:
    checker = SlowChecker()
    runner = CheckRunner(checker, MonitorMetrics())
    try:
        with ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(lambda _: runner.start(), range(40)))
        started = [future for _, future in answers if future is not None]
        assert len(started) == 1, "one check starts; the others join it"
        assert {ticket.number for ticket, _ in answers} == {1}
        checker.release.set()
        assert started[0].result(timeout=30).check_id == 1
        ticket, future = runner.start()
        assert ticket.number == 2 and future is not None, "once it finished, a request starts a new one"
        assert future.result(timeout=30).check_id == 2
        assert checker.runs == 2
    finally:
        checker.release.set()
        runner.close()
