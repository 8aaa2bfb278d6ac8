"""Data-parallel fine-tuning: `train_classifier` itself, run by torchrun in several processes that each train on
their share of the rows and average gradients every step.

On this machine `train_distributed` starts `torchrun --standalone --nproc-per-node N` and waits; in a cluster
Kubeflow Trainer's torch-distributed runtime starts the same entry point (`python -m textclf.train.distributed
SPEC`) on every node. The Hugging Face Trainer joins the process group torchrun describes (RANK, WORLD_SIZE,
MASTER_ADDR) with `use_cpu=True`, which selects gloo on CPU, and shards the data with a distributed sampler, so
every rank holds the same weights after each step. Rank 0 writes the model and the result; every rank writes a
report of what it did (`rank-R.json`: its weights' digest, the examples it collated)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from textclf.data.preprocess import INPUT_IDS, LabelMap
from textclf.train.trainer import TrainingJob, TrainingParams, TrainResult, train_classifier

SPEC_FILE = "spec.json"
RESULT_FILE = "result.json"
MODEL_DIR = "model"
LOG_FILE = "torchrun.log"


class DistributedTrainingFailed(RuntimeError):
    """torchrun (or one of its ranks) ended with an error."""


def example_digest(input_ids: Any) -> str:
    """A short fingerprint of one tokenized example, the same in every process."""
    return hashlib.sha1(np.asarray(input_ids, dtype=np.int64).tobytes()).hexdigest()[:16]


def weights_digest(model: Any) -> str:
    """SHA-256 of every parameter and buffer, in state-dict order: equal digests, equal weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def write_spec(work_dir: Path, job: TrainingJob) -> Path:
    """What every rank needs, in `work_dir` (a directory all ranks read: local disk here, a shared volume in a
    cluster)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    job.train.to_parquet(work_dir / "train.parquet")
    job.validation.to_parquet(work_dir / "validation.parquet")
    spec = {
        "base_model": job.base_model,
        "labels": list(job.label_map.labels),
        "params": job.params.to_dict(),
        "max_length": job.max_length,
        "truncation": job.truncation,
    }
    path = work_dir / SPEC_FILE
    path.write_text(json.dumps(spec))
    return path


def torchrun_command(spec: Path, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={workers}",
        "-m",
        "textclf.train.distributed",
        str(spec),
    ]


def train_distributed(job: TrainingJob, work_dir: Path, workers: int = 2) -> TrainResult:
    """`train_classifier` in `workers` processes on this machine (torchrun); returns rank 0's result."""
    spec = write_spec(work_dir, job)
    log = work_dir / LOG_FILE
    with open(log, "w") as output:
        finished = subprocess.run(torchrun_command(spec, workers), stdout=output, stderr=subprocess.STDOUT)
    if finished.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise DistributedTrainingFailed(f"torchrun with {workers} processes failed ({log}):\n{tail}")
    return load_result(work_dir)


def load_result(work_dir: Path) -> TrainResult:
    """Rank 0's model and numbers, as `train_classifier` returned them in that process."""
    from transformers import AutoModelForSequenceClassification

    from textclf.train.modeling import load_tokenizer

    saved = json.loads((work_dir / RESULT_FILE).read_text())
    model = AutoModelForSequenceClassification.from_pretrained(work_dir / MODEL_DIR)
    return TrainResult(
        model=model,
        tokenizer=load_tokenizer(str(work_dir / MODEL_DIR)),
        history=saved["history"],
        best_validation=saved["best_validation"],
        validation_probabilities=np.asarray(saved["validation_probabilities"], dtype=np.float32),
        train_seconds=saved["train_seconds"],
        train_samples_per_second=saved["train_samples_per_second"],
        bf16=saved["bf16"],
        class_weights=saved["class_weights"],
    )


def run_rank(spec_path: Path) -> None:
    """One process of a torchrun job: train on this rank's share, report, and (rank 0) save the result."""
    work_dir = spec_path.parent
    spec = json.loads(spec_path.read_text())
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    train = pd.read_parquet(work_dir / "train.parquet")
    params = TrainingParams(**spec["params"]).for_data(len(train))
    # `batch_size` is the batch of one optimizer step, as with one process: each rank takes its share, so the
    # recipe (steps per epoch, `epochs: auto`, the tuned learning rate) means the same with any number of ranks.
    per_rank = params.replace(batch_size=max(1, params.batch_size // world_size))
    collated: set[str] = set()
    job = TrainingJob(
        spec["base_model"],
        train,
        pd.read_parquet(work_dir / "validation.parquet"),
        LabelMap(tuple(spec["labels"])),
        per_rank,
        spec["max_length"],
        spec["truncation"],
    )
    result = train_classifier(
        job,
        work_dir / "run",
        show_progress=rank == 0,
        batch_observer=lambda features: collated.update(example_digest(f[INPUT_IDS]) for f in features),
    )
    training_rows = {example_digest(ids) for ids in train[INPUT_IDS]}
    report = {
        "rank": rank,
        "world_size": world_size,
        "weights_sha256": weights_digest(result.model),
        "training_examples": sorted(collated & training_rows),
    }
    (work_dir / f"rank-{rank}.json").write_text(json.dumps(report))
    if rank != 0:
        return
    result.model.save_pretrained(work_dir / MODEL_DIR)
    result.tokenizer.save_pretrained(work_dir / MODEL_DIR)
    saved = {
        "history": result.history,
        "best_validation": result.best_validation,
        "validation_probabilities": np.asarray(result.validation_probabilities).tolist(),
        "train_seconds": result.train_seconds,
        # The trainer counts this rank's samples; every rank ran as many steps.
        "train_samples_per_second": result.train_samples_per_second * world_size,
        "bf16": result.bf16,
        "class_weights": result.class_weights,
    }
    (work_dir / RESULT_FILE).write_text(json.dumps(saved, default=float))


def run_rank_through_mlflow(run_id: str, artifact_path: str) -> None:
    """A rank on a node that shares only MLflow with the others (a Kubeflow Trainer TrainJob): the input from the
    run's `ARTIFACT_PATH/input`, the output (rank 0's model and result, every rank's report) to `.../output`."""
    import tempfile

    import mlflow

    client = mlflow.MlflowClient()
    rank = int(os.environ.get("RANK", "0"))
    with tempfile.TemporaryDirectory() as scratch:
        work_dir = Path(client.download_artifacts(run_id, f"{artifact_path}/input", scratch))
        run_rank(work_dir / SPEC_FILE)
        output = f"{artifact_path}/output"
        client.log_artifact(run_id, str(work_dir / f"rank-{rank}.json"), output)
        if rank == 0:
            client.log_artifact(run_id, str(work_dir / RESULT_FILE), output)
            client.log_artifacts(run_id, str(work_dir / MODEL_DIR), f"{output}/{MODEL_DIR}")


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m textclf.train.distributed", description=__doc__.split("\n")[0])
    parser.add_argument("spec", nargs="?", type=Path, help="spec.json in a directory every rank reads")
    parser.add_argument("--mlflow-run", help="or: the MLflow run holding the input (MLFLOW_TRACKING_URI)")
    parser.add_argument("--artifact-path", help="with --mlflow-run: where in the run's artifacts")
    arguments = parser.parse_args(argv)
    if arguments.mlflow_run:
        run_rank_through_mlflow(arguments.mlflow_run, arguments.artifact_path)
    elif arguments.spec:
        run_rank(arguments.spec)
    else:
        parser.error("give a spec.json or --mlflow-run and --artifact-path")


if __name__ == "__main__":
    main(sys.argv[1:])


class DistributedConfig(BaseModel):
    """Data-parallel training."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: int = Field(
        1,
        ge=1,
        description="data-parallel training processes: more than 1 runs torchrun on this machine, or in a cluster "
        "a Kubeflow Trainer TrainJob (torch-distributed runtime) of that many nodes",
    )
    trainjob_timeout_seconds: int = Field(
        6 * 3600, ge=60, description="cluster runs with workers > 1: how long the TrainJob may take"
    )
