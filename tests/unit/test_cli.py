"""The command line: bad input gets a message and exit code 2; evaluate prints one JSON object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textclf.cli import app

pytestmark = pytest.mark.unit

runner = CliRunner()


def said(result) -> str:
    """The command's output with Rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_run_rejects_a_bad_configuration_before_doing_any_work(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--workdir", str(tmp_path), "--set", "epochs=many"])
    assert result.exit_code == 2
    assert "invalid configuration" in said(result) and "epochs" in said(result)
    assert not (tmp_path / "mlflow.db").exists()


def test_run_rejects_a_set_without_a_value(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--workdir", str(tmp_path), "--set", "epochs"])
    assert result.exit_code == 2 and "KEY=VALUE" in said(result)


def test_evaluate_prints_metrics_as_json(step_inputs: dict, reviews_csv: Path) -> None:
    result = runner.invoke(
        app, ["evaluate", "--model", str(step_inputs["model"]), "--data", str(reviews_csv), "--json"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["samples"] == 70 and set(metrics["per_class"]) == {"negative", "positive"}


def test_evaluate_names_a_missing_column(step_inputs: dict, reviews_csv: Path) -> None:
    result = runner.invoke(
        app, ["evaluate", "--model", str(step_inputs["model"]), "--data", str(reviews_csv), "--text-column", "body"]
    )
    assert result.exit_code == 2 and "missing column(s) 'body'" in said(result)


def test_evaluate_refuses_labels_the_model_does_not_know(step_inputs: dict, tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("text,label\nfine,neutral\nbad,negative\n")
    result = runner.invoke(
        app, ["evaluate", "--model", str(step_inputs["model"]), "--data", str(tmp_path / "other.csv")]
    )
    assert result.exit_code == 2 and "['neutral'] are not classes of this model" in said(result)


def test_evaluate_names_a_model_that_is_not_there(tmp_path: Path, reviews_csv: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "nope"), "--data", str(reviews_csv)])
    assert result.exit_code == 2 and "neither a models:/ or runs:/ URI nor a directory" in said(result)
