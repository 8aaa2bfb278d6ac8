"""`textclf drift`: the monitor's check on any two datasets, from the command line, as one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.integration

REVIEWS = ["a warm and funny film", "dull, slow and far too long", "the best movie this year", "no plot at all"]
TWEETS = ["lol gr8 #winning @jo 😂 http://t.co/x", "ugh 2day sucks!!! #mondays >:(", "OMG 100% luv it <3 #blessed"]


def drift(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "textclf.cli", "drift", *arguments], capture_output=True, text=True, timeout=600
    )


def test_tables_with_a_model_and_a_model_reference_give_the_decision_and_scores(
    tmp_path: Path, step_inputs: dict
) -> None:
    reference, current = tmp_path / "reference.csv", tmp_path / "current.csv"
    pd.DataFrame({"text": REVIEWS * 60, "label": ["positive", "negative"] * 120}).to_csv(reference, index=False)
    # Feedback labels on the new domain: with them a drifted window means retrain (the monitor's policy).
    pd.DataFrame({"text": TWEETS * 80, "label": ["positive", "negative", "positive"] * 80}).to_csv(current, index=False)
    completed = drift(
        "--reference",
        str(reference),
        "--current",
        str(current),
        "--model",
        str(step_inputs["model"]),
        "--report-dir",
        str(tmp_path / "report"),
        "--json",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    decision = json.loads(completed.stdout)
    assert decision["decision"] == "retrain" and decision["window"]["size"] == 240
    assert decision["quality"]["labelled"] == 240 and "accuracy" in decision["quality"]
    assert {"length_chars", "oov_share", "non_letter_share", "predicted_label", "score", "embedding"} <= set(
        decision["scores"]
    )
    assert decision["scores"]["non_letter_share"]["drifted"]
    assert (tmp_path / "report" / "drift_report.html").is_file()
    assert json.loads((tmp_path / "report" / "drift_report.json").read_text())["decision"] == "retrain"

    # The model directory itself as the reference: its saved reference sample is compared.
    unlabelled = tmp_path / "unlabelled.csv"
    pd.DataFrame({"text": TWEETS * 80}).to_csv(unlabelled, index=False)
    from_model = drift("--reference", str(step_inputs["model"]), "--current", str(unlabelled), "--json")
    assert from_model.returncode == 0, from_model.stderr[-3000:]
    waiting = json.loads(from_model.stdout)
    assert waiting["window"]["model_version"].startswith("sha256-")
    assert waiting["decision"] == "drift" and "waiting for feedback" in waiting["reason"]


def test_without_a_model_only_text_checks_run_and_bad_input_says_what_to_fix(tmp_path: Path) -> None:
    reference, current, wrong = tmp_path / "reference.csv", tmp_path / "current.csv", tmp_path / "wrong.csv"
    pd.DataFrame({"text": REVIEWS * 60}).to_csv(reference, index=False)
    pd.DataFrame({"text": REVIEWS * 60}).to_csv(current, index=False)
    pd.DataFrame({"sentence": REVIEWS}).to_csv(wrong, index=False)
    completed = drift("--reference", str(reference), "--current", str(current), "--json")
    assert completed.returncode == 0, completed.stderr[-3000:]
    decision = json.loads(completed.stdout)
    assert decision["decision"] == "no_drift"
    assert set(decision["scores"]) == {"length_chars", "word_count", "oov_share", "non_letter_share"}
    refused = drift("--reference", str(reference), "--current", str(wrong), "--json")
    assert refused.returncode == 2 and "no 'text' column" in refused.stderr
