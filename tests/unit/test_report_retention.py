"""The report archive stays within its disk budget: the oldest reports go first, by bytes and by age, and the
reports that started retraining runs keep a budget of their own."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from textclf.config import MonitorConfig
from textclf.monitor.report_files import ReportArchive, ReportRetention

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, tzinfo=UTC)
REPORT_BYTES = 10_000


def write_report(archive: ReportArchive, name: str, age: timedelta) -> None:
    archive.directory.mkdir(parents=True, exist_ok=True)
    stamp = (NOW - age).timestamp()
    for suffix, size in ((".html", REPORT_BYTES - 1_000), (".json", 1_000)):
        path = archive.directory / f"{name}{suffix}"
        path.write_bytes(b"x" * size)
        os.utime(path, (stamp, stamp))


def test_filling_past_the_cap_deletes_the_oldest_and_keeps_triggers_within_their_own_cap(tmp_path: Path) -> None:
    archive = ReportArchive(tmp_path / "reports")
    names = [f"check-{index:04d}" for index in range(40)]  # sort by time, as the checker names them
    for index, name in enumerate(names):
        write_report(archive, name, timedelta(minutes=40 - index))
    triggers = {names[2], names[5], names[9], names[30]}
    retention = ReportRetention(max_bytes=10 * REPORT_BYTES, max_age_days=30, max_triggering_bytes=3 * REPORT_BYTES)

    deleted = archive.prune("check-", retention, triggers, NOW)

    kept = set(archive.names("check-"))
    everyday = [name for name in names if name not in triggers]
    assert kept - triggers == set(everyday[-10:]), "the newest everyday reports that fit the budget stay"
    assert kept & triggers == {names[30], names[9], names[5]}, "the newest triggers that fit their own budget"
    assert names[2] in deleted and everyday[0] in deleted
    used = sum(path.stat().st_size for path in archive.directory.iterdir())
    assert used <= retention.max_bytes + retention.max_triggering_bytes


def test_reports_older_than_the_age_limit_go_even_under_the_byte_budget(tmp_path: Path) -> None:
    archive = ReportArchive(tmp_path / "reports")
    write_report(archive, "check-0001", timedelta(days=45))
    write_report(archive, "check-0002", timedelta(days=45))
    write_report(archive, "check-0003", timedelta(days=1))
    retention = ReportRetention(max_bytes=10**9, max_age_days=30, max_triggering_bytes=10**9)

    archive.prune("check-", retention, {"check-0002"}, NOW)

    assert archive.names("check-") == ["check-0003", "check-0002"], "an old trigger stays while it fits its cap"


def test_the_default_budgets_fit_the_charts_reports_volume_with_room_to_spare() -> None:
    import yaml

    values = yaml.safe_load((Path(__file__).resolve().parents[2] / "charts/textclf/values.yaml").read_text())
    volume = values["monitor"]["reportsStorage"]
    assert volume.endswith("Gi")
    defaults = MonitorConfig()
    budget = defaults.report_retention_bytes + defaults.triggering_report_retention_bytes
    assert budget <= 0.5 * int(volume[:-2]) * 1024**3
