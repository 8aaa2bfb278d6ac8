import inspect
from pathlib import Path

import pytest
from pydantic import ValidationError

from textclf.config import PipelineConfig, load_config

pytestmark = pytest.mark.unit


def test_priority_is_defaults_then_yaml_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 5\ntrials: 4\nbatch_size: 8\n")
    monkeypatch.setenv("TEXTCLF_TRIALS", "6")
    monkeypatch.setenv("TEXTCLF_BATCH_SIZE", "12")
    config = load_config(path, {"batch_size": 16, "data": None})
    assert (config.epochs, config.trials, config.batch_size, config.data) == (5, 6, 16, "demo")


def test_unknown_fields_and_bad_values_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="epoch"):
        load_config(None, {"epoch": 3})
    with pytest.raises(ValidationError, match="finetune"):
        load_config(None, {"finetune": "adapters"})
    path = tmp_path / "bad.yaml"
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(path)


def test_resolved_fills_embedded_locations(tmp_path: Path) -> None:
    resolved = PipelineConfig().resolved(tmp_path)
    assert resolved.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert resolved.optuna_storage == f"sqlite:///{tmp_path.resolve() / 'optuna.db'}"
    assert PipelineConfig(tracking_uri="http://mlflow:5000").resolved(tmp_path).tracking_uri == "http://mlflow:5000"


def test_pipeline_parameters_are_the_configuration_fields_with_the_same_defaults() -> None:
    from textclf.pipelines.training_pipeline import training_pipeline

    parameters = inspect.signature(training_pipeline.pipeline_func).parameters
    defaults = PipelineConfig().model_dump()
    assert list(parameters) == list(defaults)
    assert {name: p.default for name, p in parameters.items()} == defaults
