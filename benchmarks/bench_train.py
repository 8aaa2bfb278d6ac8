"""Training benchmark: textclf's recipe against the seeds' recipe, same model, same data, same splits.

    make bench-train            # or: python benchmarks/bench_train.py [--budget-minutes 20]

Data: the AG News sample in ../shared/data/ag_news/train.csv (never committed). Both recipes fine-tune
the packaged MiniLM on the same stratified train/validation/test split and get the same wall-clock
training budget; each runs in its own process so its peak memory is its own. Prints a table and writes
benchmarks/results/bench_train.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from tables import REPO, RESULTS

DATA = REPO.parent / "shared" / "data" / "ag_news" / "train.csv"
SPLIT_SEED = 42


def time_budget_callback(seconds: float):
    from transformers import TrainerCallback

    class StopAtBudget(TrainerCallback):
        """Ends training once the wall-clock budget is spent; the best checkpoint so far is kept."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() - self.started > seconds:
                control.should_training_stop = True
                control.should_evaluate = True
                control.should_save = True

    return StopAtBudget()


def load_splits():
    """The de-duplicated, stratified train/validation/test split both recipes train and score on."""
    from textclf.data.ingest import ingest
    from textclf.data.sources import DataSource

    return ingest(DataSource(str(DATA)), validation_fraction=0.1, test_fraction=0.1, seed=SPLIT_SEED)


def run_textclf(budget_seconds: float) -> dict:
    from quality import train_and_score

    splits = load_splits().splits
    run = train_and_score(
        splits["train"], splits["validation"], splits["test"], {}, callbacks=[time_budget_callback(budget_seconds)]
    )
    return {
        "recipe": "textclf defaults (full FT, frozen word embeddings, bf16 autocast, dynamic padding, length-grouped)",
        "params": run["params"],
        "train_rows": run["train_rows"],
        "test_rows": run["test_rows"],
        "test_accuracy": run["metrics"]["accuracy"],
        "test_macro_f1": run["metrics"]["macro_f1"],
        "train_seconds": run["train_seconds"],
        "train_samples_per_second": run["train_samples_per_second"],
        "epochs_completed": run["epochs_run"],
        "bf16": run["bf16"],
    }


def run_seeds(budget_seconds: float) -> dict:
    """The seeds' recipe as written: HF Trainer, fp32, padding to 128, lr 2e-5, batch 16, warmup 500, wd 0.01."""
    import tempfile

    import datasets
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from textclf.metrics import classification_metrics
    from textclf.train.modeling import PACKAGED_MINILM, resolve_base_model
    from textclf.train.trainer import training_throughput

    splits = load_splits().splits
    labels = sorted(splits["train"]["label"].unique())
    label2id = {label: i for i, label in enumerate(labels)}
    path = resolve_base_model(PACKAGED_MINILM)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )

    def encode(frame):
        encoded = tokenizer(frame["text"].tolist(), padding="max_length", truncation=True, max_length=128)
        return datasets.Dataset.from_dict({**encoded, "labels": [label2id[x] for x in frame["label"]]})

    train, validation, test = (encode(splits[name]) for name in ("train", "validation", "test"))
    with tempfile.TemporaryDirectory() as work:
        arguments = TrainingArguments(
            output_dir=work,
            learning_rate=2e-5,
            per_device_train_batch_size=16,
            per_device_eval_batch_size=16,
            warmup_steps=500,
            weight_decay=0.01,
            num_train_epochs=3,
            eval_strategy="epoch",
            save_strategy="no",
            use_cpu=True,
            report_to="none",
            seed=SPLIT_SEED,
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=train,
            eval_dataset=validation,
            callbacks=[time_budget_callback(budget_seconds)],
        )
        started = time.perf_counter()
        output = trainer.train()
        train_seconds = time.perf_counter() - started
        samples_per_second = training_throughput(trainer, arguments.per_device_train_batch_size, train_seconds)
        logits = trainer.predict(test)
    probabilities = torch.softmax(torch.as_tensor(logits.predictions).float(), -1).numpy()
    metrics = classification_metrics(np.asarray(logits.label_ids), probabilities, tuple(labels))
    return {
        "recipe": "seeds (HF Trainer, fp32, pad to 128, lr 2e-5, batch 16, warmup 500, wd 0.01)",
        "train_rows": len(train),
        "test_rows": len(test),
        "test_accuracy": metrics["accuracy"],
        "test_macro_f1": metrics["macro_f1"],
        "train_seconds": train_seconds,
        "train_samples_per_second": samples_per_second,
        "epochs_completed": round(float(output.metrics.get("epoch", 0.0)), 2),
        "bf16": False,
    }


def run_one(recipe: str, budget_seconds: float, out: Path) -> None:
    from textclf.runtime.cpu import configure_torch_threads

    configure_torch_threads()
    measured = (run_textclf if recipe == "textclf" else run_seeds)(budget_seconds)
    # ru_maxrss is in KiB on Linux: the peak resident memory of this recipe's process alone.
    measured["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.write_text(json.dumps(measured, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-minutes", type=float, default=20.0, help="training wall-clock budget per recipe")
    parser.add_argument("--recipes", default="textclf,seeds", help="comma-separated: textclf, seeds")
    parser.add_argument("--only", choices=["textclf", "seeds"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    budget = args.budget_minutes * 60
    if args.only:
        run_one(args.only, budget, args.out)
        return
    if not DATA.exists():
        sys.exit(f"benchmark data missing: {DATA} (see ../shared/data/README.md); nothing was measured")
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {}
    for recipe in args.recipes.split(","):
        part = RESULTS / f"bench_train_{recipe}.json"
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--only",
                recipe,
                "--out",
                str(part),
                "--budget-minutes",
                str(args.budget_minutes),
            ],
            check=True,
        )
        results[recipe] = json.loads(part.read_text())
    report = {"data": str(DATA), "budget_minutes": args.budget_minutes, "split_seed": SPLIT_SEED, "results": results}
    if {"textclf", "seeds"} <= set(results):
        ours, seeds = results["textclf"], results["seeds"]
        report["throughput_ratio"] = ours["train_samples_per_second"] / seeds["train_samples_per_second"]
        report["accuracy_difference"] = ours["test_accuracy"] - seeds["test_accuracy"]
    (RESULTS / "bench_train.json").write_text(json.dumps(report, indent=2))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Training benchmark: AG News sample, MiniLM-L6, {args.budget_minutes:g}-minute budget")
    for column in ("recipe", "test acc", "macro F1", "samples/s", "train s", "epochs", "peak RSS MiB"):
        table.add_column(column, justify="left" if column == "recipe" else "right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['test_accuracy']:.4f}",
            f"{r['test_macro_f1']:.4f}",
            f"{r['train_samples_per_second']:.1f}",
            f"{r['train_seconds']:.0f}",
            str(r["epochs_completed"]),
            f"{r['peak_rss_mib']:.0f}",
        )
    console = Console()
    console.print(table)
    if "throughput_ratio" in report:
        console.print(
            f"throughput ratio {report['throughput_ratio']:.2f}x, accuracy difference "
            f"{report['accuracy_difference']:+.4f}; JSON: {RESULTS / 'bench_train.json'}"
        )


if __name__ == "__main__":
    main()
