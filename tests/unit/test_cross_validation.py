"""k-fold cross-validation: fold construction, the errors for impossible folds, the summary, and a real run on
the tiny model logged to MLflow as a parent run with nested fold runs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from textclf.cli import app
from textclf.evaluate.report import cross_validation_section
from textclf.train.cross_validation import (
    check_folds,
    split_off_validation,
    stratified_folds,
    summarize_folds,
)

pytestmark = pytest.mark.unit


def labels_of(counts: dict[str, int]) -> list[str]:
    return [label for label, count in counts.items() for _ in range(count)]


def test_every_row_is_held_out_exactly_once_and_classes_spread_evenly() -> None:
    counts = {"a": 50, "b": 23, "c": 7}
    labels = labels_of(counts)
    folds = stratified_folds(labels, 5, seed=1)
    assert [fold.number for fold in folds] == [1, 2, 3, 4, 5]
    held_out = np.concatenate([fold.test_index for fold in folds])
    assert sorted(held_out.tolist()) == list(range(len(labels)))
    for fold in folds:
        assert not set(fold.train_index) & set(fold.test_index)
        assert len(fold.train_index) + len(fold.test_index) == len(labels)
        in_fold = Counter(labels[i] for i in fold.test_index)
        for label, count in counts.items():
            assert abs(in_fold[label] - count / 5) < 1, f"{label} is spread within one row of even"


def test_folds_are_the_same_for_a_seed_and_differ_across_seeds() -> None:
    labels = labels_of({"a": 30, "b": 30})
    first = [fold.test_index.tolist() for fold in stratified_folds(labels, 3, seed=7)]
    assert first == [fold.test_index.tolist() for fold in stratified_folds(labels, 3, seed=7)]
    assert first != [fold.test_index.tolist() for fold in stratified_folds(labels, 3, seed=8)]


def test_impossible_folds_get_an_error_that_says_what_to_change() -> None:
    with pytest.raises(ValueError, match="at least 2 folds; got 1"):
        check_folds(labels_of({"a": 10, "b": 10}), 1)
    with pytest.raises(ValueError, match="at least two classes"):
        check_folds(labels_of({"a": 10}), 2)
    with pytest.raises(ValueError, match=r"'rare' has 3.*at most 3 here"):
        check_folds(labels_of({"common": 40, "rare": 3}), 5)
    check_folds(labels_of({"common": 40, "rare": 5}), 5)


def test_a_folds_validation_rows_are_stratified_where_they_can_be() -> None:
    frame = pd.DataFrame({"label": labels_of({"a": 40, "b": 10}), "text": [f"t{i}" for i in range(50)]})
    train, validation = split_off_validation(frame, 0.2, seed=0)
    assert Counter(validation["label"]) == {"a": 8, "b": 2}
    assert len(train) + len(validation) == 50
    lone = pd.DataFrame({"label": labels_of({"a": 20, "b": 1}), "text": [f"t{i}" for i in range(21)]})
    train, validation = split_off_validation(lone, 0.2, seed=0)
    assert len(train) + len(validation) == 21, "a class with one row cannot be stratified: a plain split"


def test_the_summary_is_mean_and_sample_standard_deviation() -> None:
    folds = [
        {"accuracy": 0.8, "macro_f1": 0.7, "per_class": {"a": {"f1": 0.6}, "b": {"f1": 0.8}}},
        {"accuracy": 0.9, "macro_f1": 0.9, "per_class": {"a": {"f1": 1.0}, "b": {"f1": 0.8}}},
    ]
    summary = summarize_folds(folds, ["a", "b"])
    assert summary["accuracy"] == pytest.approx({"mean": 0.85, "std": np.std([0.8, 0.9], ddof=1)})
    assert summary["per_class_f1"]["b"] == pytest.approx({"mean": 0.8, "std": 0.0})


def test_cross_validation_runs_and_nests_a_run_per_fold(
    step_inputs: dict, tmp_path: Path, local_tracking_uri: str
) -> None:
    import mlflow

    from textclf.data.preprocess import Preprocessing
    from textclf.steps.cross_validate import run_cross_validation
    from textclf.train.trainer import TrainingParams

    prepared = pd.concat(
        [pd.read_parquet(step_inputs["prepared"][name]) for name in ("train", "validation")], ignore_index=True
    )
    preprocessing = Preprocessing.load(step_inputs["preprocessing"])
    heard = []
    # As in the pipeline: the run is resumed by id, with no experiment set in this process.
    experiment_id = mlflow.create_experiment("cv")
    with mlflow.start_run(run_id=mlflow.tracking.MlflowClient().create_run(experiment_id).info.run_id) as pipeline_run:
        result = run_cross_validation(
            prepared,
            preprocessing,
            TrainingParams(epochs=1, batch_size=16),
            3,
            0.2,
            tmp_path,
            on_fold=lambda fold, scores: heard.append(fold.number),
        )
    assert heard == [1, 2, 3]
    assert sum(fold["test_rows"] for fold in result["folds"]) == len(prepared)
    assert result["summary"]["folds"] == 3 and set(result["summary"]["per_class_f1"]) == set(preprocessing.labels)
    client = mlflow.tracking.MlflowClient()
    parent = client.get_run(result["mlflow_run_id"])
    assert parent.data.tags["mlflow.parentRunId"] == pipeline_run.info.run_id
    assert parent.data.metrics["cv_accuracy_mean"] == pytest.approx(result["summary"]["accuracy"]["mean"])
    assert parent.info.experiment_id == experiment_id, "in the pipeline run's experiment, not the default one"
    children = client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", order_by=["params.fold"]
    )
    assert [run.data.params["fold"] for run in children] == ["1", "2", "3"]
    assert all("fold_accuracy" in run.data.metrics for run in children)
    assert "cv_accuracy_std" in client.get_run(pipeline_run.info.run_id).data.metrics
    card = cross_validation_section(result)
    assert "## Cross-validation" in card and card.count("\n| ") >= 3 + len(preprocessing.labels)


def test_cv_command_rejects_impossible_folds_before_training(tmp_path: Path, reviews_csv: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["cv", "--data", str(reviews_csv), "--folds", "1", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "at least 2 folds" in " ".join(result.output.split())
    rows = pd.read_csv(reviews_csv)
    few = tmp_path / "few.csv"
    pd.concat([rows[rows["label"] == "positive"], rows[rows["label"] == "negative"].head(2)]).to_csv(few, index=False)
    result = runner.invoke(app, ["cv", "--data", str(few), "--folds", "3", "--workdir", str(tmp_path)])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "'negative' has 2" in said
    assert not (tmp_path / "mlflow.db").exists()


def test_cv_command_prints_the_table_and_writes_json(tmp_path: Path, reviews_csv: Path, tiny_model_dir: Path) -> None:
    output = tmp_path / "cv.json"
    result = CliRunner().invoke(
        app,
        [
            "cv",
            "--data",
            str(reviews_csv),
            "--folds",
            "2",
            "--base-model",
            str(tiny_model_dir),
            "--epochs",
            "1",
            "--workdir",
            str(tmp_path),
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "fold 1/2" in said and "fold 2/2" in said and "mean ± std" in said
    assert json.loads(output.read_text())["summary"]["folds"] == 2
