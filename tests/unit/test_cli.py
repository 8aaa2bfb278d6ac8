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
    result = runner.invoke(app, ["run", "--workdir", str(tmp_path), "--set", "training.epochs=many"])
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


def test_run_unless_champion_trains_nothing_while_the_registry_has_one(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Compose's training service runs on every `docker compose up`; a restarted stack keeps its champion."""
    from mlflow.tracking import MlflowClient

    from textclf.names import CHAMPION_ALIAS, REGISTERED_MODEL_NAME

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model(REGISTERED_MODEL_NAME)
    version = client.create_model_version(REGISTERED_MODEL_NAME, str(tiny_model_dir))
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, version.version)
    result = runner.invoke(app, ["run", "--workdir", str(tmp_path), "--unless-champion", "--data", "no-such.csv"])
    assert result.exit_code == 0, result.output
    assert f"already has a champion (v{version.version}" in said(result)
    assert not (tmp_path / "pipeline_root").exists()


def test_a_command_whose_package_is_missing_names_the_extra_that_brings_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """An image holds one extra: `textclf serve` in the monitor image, say, answers with what to install."""
    import sys

    import textclf.cli

    def missing() -> None:
        raise ModuleNotFoundError("No module named 'kserve'", name="kserve")

    monkeypatch.setattr(textclf.cli, "app", missing)
    monkeypatch.setattr(sys, "argv", ["textclf", "serve"])
    with pytest.raises(SystemExit) as exited:
        textclf.cli.main()
    assert exited.value.code == 1
    message = " ".join(capsys.readouterr().err.split())
    assert "needs kserve, which this installation lacks" in message and "textclf[serving]" in message
