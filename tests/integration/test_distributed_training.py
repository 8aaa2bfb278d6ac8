"""Data-parallel fine-tuning under torchrun on this machine: two processes, one model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from textclf.data.cleaning import CleaningConfig
from textclf.data.ingest import ingest
from textclf.data.preprocess import INPUT_IDS, LabelMap, prepare_split
from textclf.data.sources import DataSource
from textclf.train.distributed import example_digest, train_distributed, weights_digest
from textclf.train.modeling import load_tokenizer
from textclf.train.trainer import TrainingJob, TrainingParams

pytestmark = pytest.mark.integration

MAX_LENGTH = 32


PARAMS = TrainingParams(finetune="full", epochs=1, batch_size=4, early_stopping_patience=1, learning_rate=1e-3)


@pytest.fixture
def splits(reviews_csv: Path, tiny_model_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, LabelMap]:
    raw = ingest(DataSource(str(reviews_csv)), 0.2, 0.2, seed=3).splits
    label_map = LabelMap.from_labels(raw["train"]["label"])
    tokenizer = load_tokenizer(str(tiny_model_dir))
    train, validation = (
        prepare_split(raw[name], CleaningConfig(), tokenizer, label_map, MAX_LENGTH).frame
        for name in ("train", "validation")
    )
    return train.drop_duplicates(subset="text"), validation, label_map


def test_two_ranks_train_one_model_on_halves_of_the_data(splits, tiny_model_dir: Path, tmp_path: Path) -> None:
    train, validation, label_map = splits
    params = PARAMS

    result = train_distributed(
        TrainingJob(str(tiny_model_dir), train, validation, label_map, params, MAX_LENGTH), tmp_path, workers=2
    )

    reports = [json.loads((tmp_path / f"rank-{rank}.json").read_text()) for rank in (0, 1)]
    assert [report["world_size"] for report in reports] == [2, 2], "one job of two ranks, not two jobs of one"
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"], "every rank holds the same weights"
    assert weights_digest(result.model) == reports[0]["weights_sha256"], "the model returned is rank 0's"
    halves = [set(report["training_examples"]) for report in reports]
    everything = {example_digest(ids) for ids in train[INPUT_IDS]}
    assert halves[0] | halves[1] == everything
    # Each rank trains on its own half; the sampler tops the last batches up with a few rows from the start so
    # that both ranks run the same number of steps (42 rows: 22 each, 2 of them seen by both).
    assert len(halves[0] & halves[1]) < params.batch_size
    assert all(abs(len(half) - len(everything) / 2) < params.batch_size for half in halves)
    assert result.history and 0.0 <= result.best_validation["accuracy"] <= 1.0
    assert result.validation_probabilities.shape == (len(validation), len(label_map.labels))


class LocalTrainJobs:
    """The Kubernetes side of a TrainJob, played on this machine: `create` runs the job's own command and env
    under torchrun with one process per node, as Kubeflow Trainer's torch plugin would set PET_NNODES etc."""

    def __init__(self) -> None:
        self.created: list[dict] = []
        self.finished: dict[str, int] = {}

    def create(self, namespace: str, body: dict) -> dict:
        trainer = body["spec"]["trainer"]
        assert trainer["command"][0] == "torchrun"
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={trainer['numNodes'] * trainer['numProcPerNode']}",
            *trainer["command"][1:],
        ]
        env = os.environ | {variable["name"]: variable["value"] for variable in trainer["env"]}
        self.created.append(body)
        self.finished[body["metadata"]["name"]] = subprocess.run(command, env=env, timeout=600).returncode
        return body

    def get(self, namespace: str, name: str) -> dict:
        state = "Complete" if self.finished[name] == 0 else "Failed"
        return {"status": {"conditions": [{"type": state, "status": "True", "reason": "Exited", "message": ""}]}}

    def delete(self, namespace: str, name: str) -> None:
        del self.finished[name]


def test_a_trainjob_s_nodes_share_only_mlflow_and_the_step_gets_rank_0_s_model(
    splits, tiny_model_dir: Path, tmp_path: Path, mlflow_server: str
) -> None:
    """The cluster path without the cluster: the step logs the input to its MLflow run, each rank downloads it,
    rank 0 logs the model back, and the step loads it, all through a real MLflow server's HTTP API."""
    import mlflow

    from textclf.components.train.trainjob import train_on_trainjob

    train, validation, label_map = splits
    tracking_uri = mlflow_server
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        jobs = LocalTrainJobs()
        with mlflow.start_run() as run:
            result = train_on_trainjob(
                TrainingJob(str(tiny_model_dir), train, validation, label_map, PARAMS, MAX_LENGTH),
                tmp_path / "step",
                workers=2,
                namespace="textclf",
                tracking_uri=tracking_uri,
                timeout_seconds=600,
                api=jobs,
            )
        (job,) = jobs.created
        output = f"distributed/{job['metadata']['name']}/output"
        logged = {Path(a.path).name for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, output)}
        assert {"rank-0.json", "rank-1.json", "result.json", "model"} <= logged
        reports = [
            json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{output}/rank-{rank}.json"))
            for rank in (0, 1)
        ]
    finally:
        mlflow.set_tracking_uri(previous)
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"] == weights_digest(result.model)
    assert result.validation_probabilities.shape == (len(validation), len(label_map.labels))
