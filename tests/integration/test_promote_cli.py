"""`require_approval` holds a challenger trained on monitor feedback; `textclf promote VERSION` releases it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.registry import NAME, register_two_versions

pytestmark = pytest.mark.integration


def test_require_approval_holds_a_challenger_trained_on_feedback_until_textclf_promote(
    step_inputs: dict, tmp_path: Path
) -> None:

    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from textclf.cli import app
    from textclf.registry.gate import ACCURACY_TAG, PER_CLASS_F1_TAG, TRAINED_ON_FEEDBACK_TAG, PromotionPolicy
    from textclf.registry.serving_state import champion_version
    from textclf.registry.tracking import resume_run
    from textclf.steps.register import run_gate

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_ids = register_two_versions(tracking_uri, step_inputs["model"])
    client = MlflowClient(tracking_uri, tracking_uri)
    for version, accuracy in (("1", 0.5), ("2", 0.9)):
        client.set_model_version_tag(NAME, version, ACCURACY_TAG, str(accuracy))
        client.set_model_version_tag(NAME, version, PER_CLASS_F1_TAG, json.dumps({"positive": accuracy}))
    client.set_model_version_tag(NAME, "2", TRAINED_ON_FEEDBACK_TAG, "true")

    with resume_run(tracking_uri, run_ids[1]):
        held = run_gate(NAME, "2", PromotionPolicy(require_approval=True))
    assert not held.promote and held.awaiting_approval and "textclf promote 2" in held.reason
    assert client.get_run(run_ids[1]).data.tags["promotion_decision"] == "awaiting_approval"
    assert champion_version(client, NAME) == "1"

    approved = CliRunner().invoke(
        app, ["promote", "2", "--model-name", NAME, "--tracking-uri", tracking_uri, "--approved-by", "a reviewer"]
    )
    assert approved.exit_code == 0, approved.output
    assert champion_version(client, NAME) == "2"
    assert client.get_model_version(NAME, "2").tags["approved_by"].startswith("a reviewer at ")
    missing = CliRunner().invoke(app, ["promote", "9", "--model-name", NAME, "--tracking-uri", tracking_uri])
    assert missing.exit_code == 2
