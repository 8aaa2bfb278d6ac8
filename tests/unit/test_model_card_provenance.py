"""A model trained on rows the drift monitor supplied says so on its card."""

import pytest

from textclf.evaluate.report import Provenance, training_provenance

pytestmark = pytest.mark.unit


def test_a_run_the_monitor_started_with_feedback_names_its_episode_and_warns_about_the_labels() -> None:
    lines = training_provenance(Provenance("textclf/3/episode-1", "/monitor/retraining/x/extra_train.csv", True))
    text = "\n".join(lines)
    assert "episode `textclf/3/episode-1`" in text
    assert "extra_train.csv" in text
    assert "Trained on feedback labels" in text


def test_a_run_started_by_hand_has_no_provenance_lines() -> None:
    assert training_provenance(Provenance("", "", False)) == []
