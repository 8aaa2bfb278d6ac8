"""Training and tuning on the tiny model: early stopping, checkpoints, nested runs, study resumption."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
from transformers import TrainerCallback

from textclf.data.cleaning import CleaningConfig
from textclf.data.ingest import ingest
from textclf.data.preprocess import LabelMap, prepare_split
from textclf.data.sources import DataSource
from textclf.train.modeling import load_tokenizer
from textclf.train.trainer import TrainingJob, TrainingParams, train_classifier
from textclf.train.tuning import (
    configured_point,
    run_study,
    stratified_sample,
    suggest_params,
    write_study_plots,
)

pytestmark = pytest.mark.unit

MAX_LENGTH = 32


@pytest.fixture(scope="module")
def prepared(reviews_csv: Path, tiny_model_dir: Path) -> tuple[dict[str, pd.DataFrame], LabelMap]:
    splits = ingest(DataSource(str(reviews_csv)), 0.2, 0.2, seed=3).splits
    label_map = LabelMap.from_labels(splits["train"]["label"])
    tokenizer = load_tokenizer(str(tiny_model_dir))
    frames = {
        name: prepare_split(frame, CleaningConfig(), tokenizer, label_map, MAX_LENGTH).frame
        for name, frame in splits.items()
    }
    return frames, label_map


class CheckpointCounter(TrainerCallback):
    def __init__(self, directory: Path):
        self.directory = directory
        self.most = 0

    def on_save(self, args, state, control, **kwargs):
        self.most = max(self.most, len(list(self.directory.glob("checkpoint-*"))))


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_training_returns_the_best_epoch_merged_and_keeps_two_checkpoints(
    prepared, tiny_model_dir: Path, tmp_path: Path, finetune: str
) -> None:
    frames, label_map = prepared
    counter = CheckpointCounter(tmp_path / "checkpoints")
    params = TrainingParams(finetune=finetune, epochs=4, batch_size=8, early_stopping_patience=3, learning_rate=1e-3)
    result = train_classifier(
        TrainingJob(str(tiny_model_dir), frames["train"], frames["validation"], label_map, params, MAX_LENGTH),
        tmp_path,
        callbacks=[counter],
        show_progress=False,
    )
    assert [round(entry["epoch"]) for entry in result.history] == [1, 2, 3, 4]
    assert counter.most <= 2
    best_epoch_accuracy = max(entry["accuracy"] for entry in result.history)
    assert result.best_validation["accuracy"] == pytest.approx(best_epoch_accuracy)
    assert result.validation_probabilities.shape == (len(frames["validation"]), 2)
    assert not any("lora" in name for name, _ in result.model.named_parameters())
    assert result.train_samples_per_second > 0


def test_early_stopping_ends_training_when_validation_stops_improving(
    prepared, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames, label_map = prepared
    # A zero learning rate never improves on the first epoch, so patience 1 stops after epoch 2.
    params = TrainingParams(finetune="full", epochs=6, batch_size=8, learning_rate=1e-12, early_stopping_patience=1)
    result = train_classifier(
        TrainingJob(str(tiny_model_dir), frames["train"], frames["validation"], label_map, params, MAX_LENGTH),
        tmp_path,
        show_progress=False,
    )
    assert len(result.history) == 2
    assert "loss" not in capsys.readouterr().out, "without progress, training prints nothing to stdout"


def test_search_space_respects_the_fine_tuning_mode() -> None:
    study = optuna.create_study()
    lora = suggest_params(study.ask(), TrainingParams(finetune="lora", epochs=3))
    full_trial = study.ask()
    full = suggest_params(full_trial, TrainingParams(finetune="full", epochs=3, lora_r=7))
    assert 1e-4 <= lora.learning_rate <= 2e-3 and 1 <= lora.epochs <= 3
    assert 1e-5 <= full.learning_rate <= 1.5e-4
    assert full.lora_r == 7 and "lora_r" not in full_trial.params


def test_the_configured_recipe_is_the_point_a_study_starts_from_where_it_lies_in_the_space() -> None:
    point = configured_point(TrainingParams(finetune="full", epochs=3))
    assert point == {"learning_rate": 5e-5, "batch_size": 32, "epochs": 3, "weight_decay": 0.01, "warmup_ratio": 0.06}
    outside = configured_point(TrainingParams(finetune="full", learning_rate=1.0, batch_size=8))
    assert "learning_rate" not in outside and "batch_size" not in outside, "left to the sampler"


def test_stratified_sample_keeps_balance() -> None:
    frame = pd.DataFrame({"text": [str(i) for i in range(100)], "label": ["a"] * 80 + ["b"] * 20})
    sample = stratified_sample(frame, 10, seed=0)
    assert sample["label"].value_counts().to_dict() == {"a": 8, "b": 2}
    assert stratified_sample(frame, 0, seed=0) is frame


def test_study_runs_nested_trials_and_resumes(
    prepared, tiny_model_dir: Path, tmp_path: Path, local_tracking_uri: str
) -> None:
    frames, label_map = prepared
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    base = TrainingParams(finetune="lora", epochs=2, batch_size=8)
    arguments = (str(tiny_model_dir), frames["train"], frames["validation"], label_map, base)
    experiment_id = mlflow.create_experiment("tuning")
    with mlflow.start_run(experiment_id=experiment_id) as parent:
        first, _ = run_study(*arguments, 2, storage, "study", tmp_path, MAX_LENGTH, show_progress=False)
    assert first.completed_trials + first.pruned_trials == 2
    configured = base.for_model(str(tiny_model_dir))
    first_trial = optuna.load_study(study_name="study", storage=storage).trials[0].params
    assert first_trial["learning_rate"] == configured.effective_learning_rate, "the first trial is the recipe"
    assert (first_trial["epochs"], first_trial["lora_r"], first_trial["weight_decay"]) == (2, 16, base.weight_decay)
    with mlflow.start_run(run_id=parent.info.run_id):
        resumed, study = run_study(*arguments, 3, storage, "study", tmp_path, MAX_LENGTH, show_progress=False)
    assert len(study.trials) == 3
    children = mlflow.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 3
    assert resumed.best_params.replace(**study.best_trial.params) == resumed.best_params
    write_study_plots(study, tmp_path / "history.html", tmp_path / "importance.html")
    assert "plotly" in (tmp_path / "history.html").read_text()
    assert (tmp_path / "importance.html").stat().st_size > 0


def test_tuning_decides_auto_epochs_for_the_whole_training_split(
    prepared: tuple[dict[str, pd.DataFrame], LabelMap], tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Trials see a sample, but train the epochs the final run on every row gets, so their choice transfers."""
    from textclf.data.preprocess import Preprocessing
    from textclf.steps.tune import run_tune
    from textclf.train.trainer import auto_epochs

    frames, label_map = prepared
    train = pd.concat([frames["train"]] * 50, ignore_index=True)  # enough rows for fewer epochs than a sample
    paths = {name: tmp_path / f"{name}.parquet" for name in ("train", "validation")}
    train.to_parquet(paths["train"])
    frames["validation"].to_parquet(paths["validation"])
    Preprocessing(label_map.labels, CleaningConfig().to_dict(), str(tiny_model_dir), MAX_LENGTH).save(
        tmp_path / "preprocessing.json"
    )
    chosen = run_tune(
        paths["train"],
        tmp_path / "preprocessing.json",
        TrainingParams(),
        0,
        f"sqlite:///{tmp_path / 'optuna.db'}",
        "fingerprint",
        tmp_path / "history.html",
        tmp_path / "importance.html",
    )
    assert chosen.epochs == auto_epochs(len(train), chosen.batch_size) < auto_epochs(len(frames["train"]), 32)
    assert chosen.finetune == "full" and chosen.early_stopping_patience >= 1
