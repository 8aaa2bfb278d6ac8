"""The whole pipeline under kfp.local against a real MLflow server, on the fixture data and the tiny model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from tests.support.servers import free_port
from textclf.config import PipelineConfig
from textclf.pipelines.runner import run_local
from textclf.registry.model_uri import resolve_model_dir

pytestmark = pytest.mark.integration
MODEL_NAME = "pipeline-test"


def config_for(server: str, data: Path, base_model: Path, tmp_path: Path, **overrides) -> PipelineConfig:
    tuning = {"trials": 2, "max_train_rows": 30, "optuna_storage": f"sqlite:///{tmp_path / 'optuna.db'}"}
    values = {
        "data": str(data),
        "dataset": {"validation_fraction": 0.2, "test_fraction": 0.2},
        "encoder": {"base_model": str(base_model), "max_length": 32},
        "training": {"epochs": 2, "batch_size": 8},
        "tuning": tuning | overrides.pop("tuning", {}),
        "tracking_uri": server,
        "registered_model_name": MODEL_NAME,
        "experiment_name": "pipeline-test",
        # The deploy step must not switch a server someone runs on the default port.
        "serving": {"url": f"http://127.0.0.1:{free_port()}"},
        **overrides,
    }
    return PipelineConfig(**values)


def test_pipeline_registers_promotes_and_gates(
    mlflow_server: str, reviews_csv: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    client = MlflowClient(mlflow_server, mlflow_server)
    run_local(config_for(mlflow_server, reviews_csv, tiny_model_dir, tmp_path), tmp_path / "root")

    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert str(champion.version) == "1"
    run = client.get_run(champion.run_id)
    assert run.data.tags["promotion_decision"] == "promote"
    assert {"test_accuracy", "baseline_tfidf_logreg_accuracy", "validation_accuracy"} <= set(run.data.metrics)
    trials = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert len(trials) == 2
    gate = json.loads(
        Path(client.download_artifacts(run.info.run_id, "registry/promotion_gate.json", str(tmp_path))).read_text()
    )
    assert gate["promote"] is True and gate["champion"] is None
    # The registered version is an MLflow model holding the model directory.
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        directory = resolve_model_dir(f"models:/{MODEL_NAME}/1", mlflow_server, tmp_path / "version-1")
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    assert (tmp_path / "version-1" / "MLmodel").exists()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "textclf.json", "reference.parquet"):
        assert (directory / name).exists(), name

    # Same data, same seed: the second model is registered as challenger but is no better, so the
    # champion stays where it is.
    run_local(config_for(mlflow_server, reviews_csv, tiny_model_dir, tmp_path), tmp_path / "root")
    assert str(client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == "2"
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "1"
    second = client.get_run(client.get_model_version(MODEL_NAME, "2").run_id)
    assert second.data.tags["promotion_decision"] == "keep_champion"

    # Any model on any data: the champion, through the registry, from the command line.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "textclf.cli",
            "evaluate",
            "--model",
            f"models:/{MODEL_NAME}@champion",
            "--data",
            str(reviews_csv),
            "--tracking-uri",
            mlflow_server,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    metrics = json.loads(result.stdout)
    assert metrics["samples"] == 70
    assert set(metrics["per_class"]) == {"negative", "positive"}
    assert 0.0 <= metrics["accuracy"] <= 1.0 and "macro_f1" in metrics


def test_a_run_killed_midway_leaves_the_registry_consistent_and_a_rerun_succeeds(
    mlflow_server: str, reviews_csv: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    name = "killed-run-test"
    command = [
        sys.executable,
        "-m",
        "textclf.cli",
        "run",
        "--data",
        str(reviews_csv),
        "--base-model",
        str(tiny_model_dir),
        "--trials",
        "0",
        "--epochs",
        "1",
        "--workdir",
        str(tmp_path),
        "--set",
        "dataset.validation_fraction=0.2",
        "--set",
        "dataset.test_fraction=0.2",
        "--set",
        "encoder.max_length=32",
        "--set",
        f"registered_model_name={name}",
        "--set",
        f"tracking_uri={mlflow_server}",
    ]
    log_path = tmp_path / "killed.log"

    def step_output() -> str:
        """What kfp.local printed: `textclf run` writes it to its per-run log and shows one line per step."""
        return "".join(path.read_text() for path in (tmp_path / "logs").glob("run-*.log"))

    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 240
        while "Executing task \x1b[96m'train'" not in step_output():
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the run never reached the train step"
            time.sleep(0.5)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    client = MlflowClient(mlflow_server, mlflow_server)
    assert client.search_model_versions(f"name = '{name}'") == []

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    versions = client.search_model_versions(f"name = '{name}'")
    assert len(versions) == 1
    assert str(client.get_model_version_by_alias(name, "champion").version) == str(versions[0].version)


def test_the_pipeline_with_parallel_tuning_on_postgresql(
    mlflow_server_on_postgres: str, postgres_url: str, reviews_csv: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The cluster's arrangement on one machine: MLflow's registry and the Optuna study in PostgreSQL, and two
    tuning workers (two processes under kfp.local, two pods in a cluster) filling one study."""
    import optuna
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.support.servers import create_database

    study_storage = create_database(postgres_url, "optuna")
    settings = config_for(
        mlflow_server_on_postgres,
        reviews_csv,
        tiny_model_dir,
        tmp_path,
        tuning={"trials": 3, "parallelism": 2, "optuna_storage": study_storage},
    )
    run_local(settings, tmp_path / "root")

    client = MlflowClient(mlflow_server_on_postgres, mlflow_server_on_postgres)
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    run = client.get_run(champion.run_id)
    trials = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert sorted(trial.info.run_name for trial in trials) == ["trial-0", "trial-1", "trial-2"]
    (summary,) = optuna.get_all_study_summaries(study_storage)
    study = optuna.load_study(study_name=summary.study_name, storage=study_storage)
    counted = [trial for trial in study.trials if not trial.user_attrs.get("over_budget")]
    assert [trial.number for trial in counted] == [0, 1, 2]
    assert all(trial.state.is_finished() for trial in counted)
    assert run.data.tags["optuna_study"] == summary.study_name
    # The registry itself lives in PostgreSQL.
    engine = create_engine(make_url(postgres_url).set(database="mlflow"))
    with engine.connect() as connection:
        names = connection.execute(text("SELECT name FROM registered_models")).scalars().all()
    engine.dispose()
    assert MODEL_NAME in names
