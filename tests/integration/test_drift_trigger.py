"""The retraining trigger: one run per drift episode even when checks race, the cooldown, and the run's data.

Two `DriftChecker`s over one store stand for two monitor processes (the schedule and a CronJob's request).
The launcher is replaced by a recorder here: what is under test is which runs start and with what; a real
launch (a whole training run) is exercised by the slow drift demo test."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.support.events import binary_cloud_event, v2_exchange
from textclf.config import MonitorConfig
from textclf.monitor.check import DriftChecker
from textclf.monitor.decision import DriftPolicy
from textclf.monitor.events import parse_event
from textclf.monitor.report import DriftReportSettings
from textclf.monitor.report_files import ReportRetention
from textclf.monitor.retraining import LaunchedRun
from textclf.monitor.store import Feedback, MonitorStore
from textclf.monitor.tables import metadata
from textclf.pipelines.runner import launch_on_cluster

pytestmark = pytest.mark.integration

TWEETS = ["lol gr8 #winning @jo 😂 http://t.co/{}", "ugh 2day sucks!!! #mondays {} >:(", "OMG 100% luv it <3 #{}"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MonitorStore:
    url = (
        f"sqlite:///{tmp_path / 'monitor.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    )
    created = MonitorStore(url).create()
    with created.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
    yield created
    created.close()


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    recorded: list[dict[str, Any]] = []

    def record(training_config, workdir, overrides, log_path) -> LaunchedRun:
        recorded.append({"training_config": training_config, "workdir": workdir, "overrides": overrides})
        return LaunchedRun("local", f"local-test-{len(recorded)}", f"log: {log_path}")

    monkeypatch.setattr("textclf.monitor.check.launch_local", record)
    return recorded


def fill(store: MonitorStore, count: int) -> None:
    for i in range(count):
        request, response = v2_exchange([TWEETS[i % 3].format(i)], ["positive"], "tiny")
        for kind, payload in (("request", request), ("response", response)):
            store.add_event(parse_event(*binary_cloud_event(f"r{i}", kind, payload, "tiny")))
    store.add_feedback([Feedback(f"r{i}", "negative" if i % 4 else "positive") for i in range(0, count, 2)])


def checker(store: MonitorStore, tmp_path: Path, step_inputs: dict, **overrides: Any) -> DriftChecker:
    policy = {"min_window_size": 40, "min_drifted_checks": 1, "min_labelled": 10}
    if "cooldown_seconds" in overrides:
        policy["cooldown_seconds"] = overrides.pop("cooldown_seconds")
    config = MonitorConfig(
        workdir=str(tmp_path / "monitor"),
        reference_model=str(step_inputs["model"]),
        policy=DriftPolicy(**policy),
        report=DriftReportSettings(embedding_sample=40),
        training_workdir=str(tmp_path / "training"),
        **overrides,
    )
    return DriftChecker(config, store, step_inputs["tracking_uri"], launch_on_cluster)


def test_racing_checks_start_one_run_per_episode(
    store: MonitorStore, tmp_path: Path, step_inputs: dict, launches: list
) -> None:
    fill(store, 60)
    store.add_feedback([Feedback("r1", "postive")])  # a typo: kept in the store, left out of training
    checkers = [checker(store, tmp_path, step_inputs) for _ in range(2)]
    for each in checkers:
        each.reference_for("tiny")  # loaded before the race, so both checks reach the trigger together
    barrier = threading.Barrier(2)
    outcomes = []

    def run(each: DriftChecker) -> None:
        barrier.wait()
        outcomes.append(each.check())

    threads = [threading.Thread(target=run, args=(each,)) for each in checkers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(launches) == 1
    runs = store.retraining_runs()
    assert [run["episode_key"] for run in runs] == ["textclf/tiny/episode-0"]
    assert runs[0]["status"] == "running" and runs[0]["run_id"] == "local-test-1"
    started = [o.retraining for o in outcomes if o.retraining and o.retraining["started"]]
    assert len(started) == 1

    overrides = launches[0]["overrides"]
    assert overrides["trigger"] == "textclf/tiny/episode-0"
    assert Path(overrides["drift_report"]).is_file() and overrides["drift_report"].endswith(".html")
    extra, window = pd.read_csv(overrides["extra_train_data"]), pd.read_csv(overrides["drift_window_data"])
    assert len(extra) + len(window) == 30 and len(window) > 0
    assert set(extra["text"]).isdisjoint(window["text"])
    assert set(extra["label"]) | set(window["label"]) == {"positive", "negative"}
    assert started[0]["rows"]["feedback_with_unknown_class"] == 1

    later = checkers[0].check()
    assert later.decision["decision"] == "insufficient_data" and "cooldown" in later.decision["reason"]
    assert len(launches) == 1


def test_after_the_cooldown_the_next_episode_gets_its_own_run(
    store: MonitorStore, tmp_path: Path, step_inputs: dict, launches: list
) -> None:
    fill(store, 60)
    each = checker(store, tmp_path, step_inputs, cooldown_seconds=0)
    assert each.check().retraining["started"]
    assert each.check().retraining["episode_key"] == "textclf/tiny/episode-1"
    assert [run["episode_key"] for run in store.retraining_runs()] == [
        "textclf/tiny/episode-0",
        "textclf/tiny/episode-1",
    ]


def test_a_run_that_cannot_start_keeps_its_claim_and_says_why(
    store: MonitorStore, tmp_path: Path, step_inputs: dict
) -> None:
    fill(store, 60)
    outcome = checker(store, tmp_path, step_inputs, kfp_host="http://127.0.0.1:9").check()
    assert outcome.retraining["started"] is False and "could not start" in outcome.retraining["reason"]
    (run,) = store.retraining_runs()
    assert run["status"] == "failed" and "could not start" in run["detail"]


def test_old_reports_are_pruned_but_the_one_that_started_a_run_is_kept(
    store: MonitorStore, tmp_path: Path, step_inputs: dict, launches: list
) -> None:
    fill(store, 60)
    each = checker(store, tmp_path, step_inputs)
    trigger = each.check().report_name
    one_report = each.reports.size_of(trigger)
    # Room for one everyday report (and the trigger, in its own budget): each check pushes the previous out.
    each.retention = ReportRetention(int(one_report * 1.5), 30, int(one_report * 1.5))
    middle, newest = (each.check().report_name for _ in range(2))
    kept = sorted(path.name for path in each.reports_dir.iterdir())
    assert kept == sorted(f"{name}{suffix}" for name in (trigger, newest) for suffix in (".html", ".json"))
    assert middle not in {path.stem for path in each.reports_dir.iterdir()}
