"""Data-parallel training on this machine: the same recipe with 1 worker (one process) and with 2 (torchrun).

    make bench-workers          # or: python benchmarks/bench_workers.py [--rows 2000] [--workers 1,2]

Data: a stratified sample of the AG News file in ../shared/data/ag_news/train.csv (never committed), split as
bench-train splits it; the packaged MiniLM, full fine-tuning, one epoch, batch 32 per process (the pipeline's
defaults otherwise). Reports training samples per second over all processes (rows / training seconds), the
validation accuracy of the model each run returns, and the run's wall time; prints a table and writes
benchmarks/results/bench_workers.json. On 2 cores two processes share the same CPUs, so expect no speed-up
here: the point is that the code that runs here is the code a TrainJob runs on several nodes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_train import DATA, load_splits
from quality import _prepare
from tables import parse_arguments, record


def run(workers: int, rows: int) -> dict:
    from textclf.train.distributed import train_distributed
    from textclf.train.modeling import PACKAGED_MINILM
    from textclf.train.trainer import TrainingJob, TrainingParams, train_classifier
    from textclf.train.tuning import stratified_sample

    splits = load_splits().splits
    frames = {
        "train": stratified_sample(splits["train"], rows, seed=0),
        "validation": stratified_sample(splits["validation"], max(rows // 4, 200), seed=0),
    }
    prepared, label_map = _prepare(frames, max_length=128, truncation="head")
    params = TrainingParams(finetune="full", epochs=1, batch_size=32, early_stopping_patience=1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work_dir:
        job = TrainingJob(PACKAGED_MINILM, prepared["train"], prepared["validation"], label_map, params, 128)
        if workers == 1:
            result = train_classifier(job, Path(work_dir), show_progress=False)
        else:
            result = train_distributed(job, Path(work_dir), workers=workers)
    return {
        "workers": workers,
        "train_rows": len(prepared["train"]),
        "train_seconds": round(result.train_seconds, 1),
        "samples_per_second": round(len(prepared["train"]) / result.train_seconds, 1),
        "validation_accuracy": round(float(result.best_validation["accuracy"]), 4),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000, help="training rows (a stratified sample)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to run")
    arguments = parse_arguments(parser, "bench_workers")
    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing: this benchmark needs ../shared/data (see its README)")
    runs = [run(int(count), arguments.rows) for count in arguments.workers.split(",")]
    record("bench_workers", runs, arguments.publish)


if __name__ == "__main__":
    main()
