"""The dashboard's series (`textclf.monitor.dashboard`) from a recorded history in a real SQLite store: each bucket
holds the requests, texts, class mix and latency recorded in it, and each check its scores and estimate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.history import (
    ESTIMATED,
    EXCHANGES,
    GROUP,
    HOURS_AGO,
    LATENCY_MS,
    record_history,
)
from textclf.monitor.dashboard import dashboard_series
from textclf.monitor.store import MonitorStore

pytestmark = pytest.mark.unit


def test_each_bucket_holds_what_was_recorded_in_it(tmp_path: Path) -> None:
    store = MonitorStore(f"sqlite:///{tmp_path / 'monitor.db'}").create()
    now = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    record_history(store, now, "7")
    series = dashboard_series(store, now - timedelta(hours=24), now, 48)
    busy = [bucket for bucket in series["traffic"] if bucket["requests"]]
    assert [bucket["requests"] for bucket in busy] == list(EXCHANGES)
    assert [bucket["texts"] for bucket in busy] == [2 * count for count in EXCHANGES]
    assert [bucket["class_mix"] for bucket in busy] == [{"negative": n, "positive": n} for n in EXCHANGES]
    assert [bucket["latency_p50_ms"] for bucket in busy] == pytest.approx(LATENCY_MS, abs=0.01)
    assert [bucket["latency_p99_ms"] for bucket in busy] == pytest.approx(LATENCY_MS, abs=0.01)
    starts = [datetime.fromisoformat(bucket["start"]) for bucket in busy]
    assert [round((now - start) / timedelta(hours=1)) for start in starts] == list(HOURS_AGO)
    assert len(series["traffic"]) == 48 and series["bucket_seconds"] == 1800
    assert [check["estimated_accuracy"] for check in series["checks"]] == list(ESTIMATED)
    assert [check["groups"] for check in series["checks"]][-1] == [GROUP]
    assert series["checks"][0]["scores"]["embedding"]["drifted"] is False
    shorter = dashboard_series(store, now - timedelta(hours=6), now, 6)
    assert sum(bucket["requests"] for bucket in shorter["traffic"]) == EXCHANGES[-1]
    assert len(shorter["checks"]) == 1
    empty = dashboard_series(store, now - timedelta(days=30), now - timedelta(days=29), 3)
    assert [bucket["latency_p50_ms"] for bucket in empty["traffic"]] == [None] * 3 and empty["checks"] == []
