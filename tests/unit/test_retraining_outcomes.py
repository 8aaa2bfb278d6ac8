"""The monitor's retraining list carries each run's gate decision, read from the MLflow run its episode key tags."""

from __future__ import annotations

import mlflow
import pytest

from textclf.monitor.retraining import episode_key, gate_outcomes
from textclf.steps.ingest import TRIGGER_TAG

pytestmark = pytest.mark.unit


def test_each_episode_gets_its_runs_gate_decision(local_tracking_uri: str) -> None:
    tracking_uri = local_tracking_uri
    decided, running = episode_key("textclf", "3", 0), episode_key("textclf", "3", 1)
    mlflow.set_experiment("retraining")
    with mlflow.start_run() as finished:
        mlflow.set_tags(
            {
                TRIGGER_TAG: decided,
                "registered_version": "4",
                "promotion_decision": "keep_champion",
                "promotion_reason": "accuracy 0.91 is not above the champion's 0.92 by 0.005",
            }
        )
    with mlflow.start_run():
        mlflow.set_tag(TRIGGER_TAG, running)
    with mlflow.start_run():
        mlflow.set_tag(TRIGGER_TAG, "manual")

    outcomes = gate_outcomes(tracking_uri, [decided, running, episode_key("textclf", "3", 2)])
    assert outcomes[decided] == {
        "mlflow_run_id": finished.info.run_id,
        "registered_version": "4",
        "promotion_decision": "keep_champion",
        "promotion_reason": "accuracy 0.91 is not above the champion's 0.92 by 0.005",
    }
    assert outcomes[running] == {"mlflow_run_id": outcomes[running]["mlflow_run_id"]}
    assert set(outcomes) == {decided, running}
    assert gate_outcomes(tracking_uri, []) == {}
