import inspect
from pathlib import Path

import pytest
from pydantic import ValidationError

from textclf.config import PipelineConfig, load_config
from textclf.train.trainer import TrainingRecipe

pytestmark = pytest.mark.unit


def test_priority_is_defaults_then_yaml_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  epochs: 5\n  batch_size: 8\ntuning:\n  trials: 4\nseed: 3\n")
    monkeypatch.setenv("TEXTCLF_TUNING__TRIALS", "6")
    monkeypatch.setenv("TEXTCLF_TRAINING__BATCH_SIZE", "12")
    monkeypatch.setenv("TEXTCLF_SEED", "7")
    config = load_config(path, {"training.batch_size": 16, "data": None})
    assert (config.training.epochs, config.tuning.trials, config.training.batch_size) == (5, 6, 16)
    assert (config.seed, config.data) == (7, "demo")
    # A group's other fields keep their defaults.
    assert config.training.learning_rate == TrainingRecipe().learning_rate


def test_a_whole_group_can_be_given_as_json_in_one_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTCLF_PROMOTION", '{"min_accuracy_gain": 0.01, "require_approval": true}')
    promotion = load_config().promotion
    assert (promotion.min_accuracy_gain, promotion.require_approval) == (0.01, True)


def test_the_flat_names_of_the_last_release_still_work_and_say_where_they_went(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("epochs: 5\ntrials: 4\nbatch_size: 8\nserving_namespace: ml\n")
    monkeypatch.setenv("TEXTCLF_TRIALS", "6")
    monkeypatch.setenv("TEXTCLF_BATCH_SIZE", "12")
    with pytest.warns(FutureWarning, match=r"'tune_parallelism' is now 'tuning.parallelism'"):
        config = load_config(path, {"batch_size": 16, "tune_parallelism": 2})
    assert (config.training.epochs, config.tuning.trials, config.training.batch_size) == (5, 6, 16)
    assert (config.tuning.parallelism, config.namespace) == (2, "ml")
    # Each source keeps its precedence whichever names it uses: a current name in the environment beats an old one
    # in the YAML file, and the old name in the environment loses to the current one there.
    monkeypatch.setenv("TEXTCLF_TRAINING__EPOCHS", "9")
    monkeypatch.setenv("TEXTCLF_TUNING__TRIALS", "1")
    with pytest.warns(FutureWarning):
        config = load_config(path)
    assert (config.training.epochs, config.tuning.trials) == (9, 1)
    with pytest.warns(FutureWarning, match="'learning_rate' is now 'training.learning_rate'"):
        assert PipelineConfig(learning_rate=1e-4).training.learning_rate == 1e-4


def test_every_flat_name_of_the_last_release_has_a_place() -> None:
    flat = PipelineConfig.FLAT_NAMES
    assert len(flat) == 59, "the last release's pipeline had 68 parameters: 9 stay at the top"
    for old, new in flat.items():
        *groups, field = new.split(".")
        owner = PipelineConfig.groups()[groups[0]] if groups else PipelineConfig
        assert field in owner.model_fields, (old, new)


def test_unknown_fields_and_bad_values_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="epoch"):
        load_config(None, {"training.epoch": 3})
    with pytest.raises(ValidationError, match="finetune"):
        load_config(None, {"training.finetune": "adapters"})
    with pytest.raises(ValidationError, match="PipelineConfig"):
        load_config(None, {"epoch": 3})
    with pytest.raises(ValueError, match=r"training\.epochs sets a field inside training, which is also set whole"):
        load_config(None, {"training": "x", "training.epochs": 3})
    path = tmp_path / "bad.yaml"
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(path)


def test_resolved_fills_embedded_locations(tmp_path: Path) -> None:
    resolved = PipelineConfig().resolved(tmp_path)
    assert resolved.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert resolved.tuning.optuna_storage == f"sqlite:///{tmp_path.resolve() / 'optuna.db'}"
    assert PipelineConfig(tracking_uri="http://mlflow:5000").resolved(tmp_path).tracking_uri == "http://mlflow:5000"


def test_pipeline_parameters_are_the_configuration_fields_with_the_same_defaults() -> None:
    from textclf.pipelines.training_pipeline import training_pipeline

    parameters = inspect.signature(training_pipeline.pipeline_func).parameters
    defaults = PipelineConfig().parameters()
    assert list(parameters) == list(defaults)
    assert {name: p.default for name, p in parameters.items()} == defaults
    assert len(parameters) < 20
    for name in PipelineConfig.groups():
        assert parameters[name].annotation is dict, "a group is one parameter, a JSON object of its fields"
