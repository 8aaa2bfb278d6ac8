"""The whole loop of `make demo-drift`, end to end with real processes: train on movie-review snippets,
serve with request logging to the monitor, in-domain traffic (no retraining), tweets with feedback (drift,
exactly one retraining run, promoted only if better on the frozen test split and the drift window, served)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from textclf.monitoring.drift_demo import DemoSettings, run_drift_demo

pytestmark = pytest.mark.slow


# About 6 minutes alone on 2 cores: two pipeline runs, a server, the monitor.
@pytest.mark.timeout(2400)
def test_drift_starts_one_retraining_run_whose_model_is_served_only_if_better(tmp_path: Path) -> None:
    result = run_drift_demo(
        DemoSettings(workdir=tmp_path, train_rows=2000, traffic=250, check_interval_seconds=3),
        progress=lambda message: None,
    )
    assert result.in_domain_decision != "retrain"
    assert result.shifted_decision == "retrain"
    (run,) = result.retraining_runs
    assert run["status"] == "succeeded", run
    assert run["episode_key"] == f"textclf/{result.champion_before}/episode-0"
    assert result.seconds_from_first_shifted_request_to_retraining_start is not None

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert result.retrained_version == "2"
    retrained_run = client.get_run(client.get_model_version("textclf", "2").run_id)
    assert retrained_run.data.tags["textclf.trigger"] == run["episode_key"]
    metrics = retrained_run.data.metrics
    assert {"drift_window_accuracy", "drift_window_champion_accuracy", "test_accuracy"} <= set(metrics)
    champion_run = client.get_run(client.get_model_version("textclf", "1").run_id)
    better = (
        metrics["test_accuracy"] > champion_run.data.metrics["test_accuracy"]
        and metrics["drift_window_accuracy"] > metrics["drift_window_champion_accuracy"]
    )
    assert (result.promotion_decision == "promote") == better, result.promotion_reason
    # The monitor's own list of retraining runs carries the gate's decision from that run's MLflow tags.
    assert run["promotion_decision"] == result.promotion_decision and run["mlflow_run_id"] == retrained_run.info.run_id
    expected = "2" if better else "1"
    assert result.champion_after == expected
    assert result.served_version_after == expected

    reports = list((tmp_path / "pipeline_root").glob("*/attach-drift-report/report"))
    assert len(reports) == 1 and "retrain" in reports[0].read_text()
