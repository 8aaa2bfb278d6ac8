"""Drift-check benchmark: how long one monitor check takes over a window of 10,000 logged predictions.

    make bench-drift            # or: python benchmarks/bench_drift.py [--window 10000]

Model: the MiniLM that `bench_serve.py` fine-tunes on an SST-2 sample (trained once, cached); its reference
sample is its validation split. Windows (from ../shared/data, never committed): 10,000 SST-2 train phrases
(the training domain), 10,000 IMDB reviews and 10,000 AG News articles (other domains). Each window's
predictions come from the model and go through the real path into a SQLite monitor store as KServe-format
CloudEvents (request + response, binary mode); then `DriftChecker.check` runs as the service runs it:
window query, text descriptors, 500 sentence embeddings per side, Evidently reports, the label-free accuracy
estimate, decision, the drift groups where drift is found, HTML + JSON. The estimate is set beside the window's
true accuracy where its labels are the model's classes (SST-2, IMDB).
The first check of a model version also loads the model and embeds its reference ("cold"); later checks
reuse them ("warm"). Prints a table and writes benchmarks/results/bench_drift.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import trained_model
from tables import parse_arguments, record

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
WINDOWS = {"sst2 (training domain)": "sst2/train.csv", "imdb": "imdb/train.csv", "ag_news": "ag_news/train.csv"}
# The model trained on SST-2 sentences of 5 words or more; its own domain is those, not the short phrases.
MIN_WORDS = {"sst2 (training domain)": 5}
SENTIMENT = {"neg": "negative", "pos": "positive"}
"""IMDB's labels as the SST-2 model's classes."""
GROUPS_SHOWN = 3


def require_data() -> None:
    for relative in WINDOWS.values():
        if not (DATA / relative).exists():
            sys.exit(f"benchmark data missing: {DATA / relative} (see ../shared/data/README.md)")


def log_predictions(store, classifier, texts: list[str], version: str) -> float:
    """The window's predictions stored through CloudEvents, 64 texts per logged request; returns seconds."""
    from textclf.monitor.events import REQUEST_EVENT, RESPONSE_EVENT, parse_event

    predictions = classifier.predict(texts)
    started = time.perf_counter()
    for start in range(0, len(texts), 64):
        chunk = texts[start : start + 64]
        request = {"inputs": [{"name": "text", "shape": [len(chunk)], "datatype": "BYTES", "data": chunk}]}
        response = {
            "model_name": "textclf",
            "model_version": version,
            "outputs": [
                {
                    "name": "label",
                    "datatype": "BYTES",
                    "shape": [len(chunk)],
                    "data": predictions.labels[start : start + 64],
                },
                {
                    "name": "score",
                    "datatype": "FP32",
                    "shape": [len(chunk)],
                    "data": predictions.scores[start : start + 64].tolist(),
                },
            ],
        }
        for event_type, payload in ((REQUEST_EVENT, request), (RESPONSE_EVENT, response)):
            headers = {
                "ce-specversion": "1.0",
                "ce-id": f"bench-{start}",
                "ce-type": event_type,
                "ce-source": "bench",
                "ce-inferenceservicename": "textclf",
                "ce-modelversion": version,
            }
            store.add_event(parse_event(headers, json.dumps(payload).encode()))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=int, default=10_000)
    args = parse_arguments(parser, "bench_drift")
    require_data()
    from textclf.config import MonitorConfig
    from textclf.monitor.check import DriftChecker
    from textclf.monitor.groups import describe
    from textclf.monitor.store import MonitorStore
    from textclf.serve.classifier import TextClassifier

    model = trained_model()
    classifier = TextClassifier.load(model)
    results = {}
    for name, relative in WINDOWS.items():
        table = pd.read_csv(DATA / relative)
        table = table[table["text"].astype(str).str.split().str.len() >= MIN_WORDS.get(name, 0)]
        sample = table.sample(args.window, random_state=1)
        texts = sample["text"].astype(str).tolist()
        truth = sample["label"].astype(str).map(lambda label: SENTIMENT.get(label, label))
        with tempfile.TemporaryDirectory() as scratch:
            store = MonitorStore(f"sqlite:///{Path(scratch) / 'monitor.db'}").create()
            logging_seconds = log_predictions(store, classifier, texts, "bench")
            config = MonitorConfig(workdir=scratch, reference_model=str(model), window_size=args.window, retrain=False)
            checker = DriftChecker(config, store, "")
            started = time.perf_counter()
            cold = checker.check()
            cold_seconds = time.perf_counter() - started
            started = time.perf_counter()
            warm = checker.check()
            warm_seconds = time.perf_counter() - started
        results[name] = {
            "window": warm.decision["window"]["size"],
            "store_seconds_per_1000_predictions": logging_seconds / args.window * 1000,
            "cold_check_seconds": cold_seconds,
            "warm_check_seconds": warm_seconds,
            "decision": warm.decision["decision"],
            "reason": warm.decision["reason"],
            "scores": {k: float(f"{v['score']:.3g}") for k, v in warm.decision["scores"].items()},
            "drifted_checks": [k for k, v in warm.decision["scores"].items() if v["drifted"]],
            "cold_decision": cold.decision["decision"],
            "estimated_accuracy": warm.decision["estimate"]["accuracy"],
            "estimated_accuracy_interval": warm.decision["estimate"]["accuracy_interval"],
            # What the model's answers score against the window's own labels, where they are the model's classes.
            "true_accuracy": (
                float((truth.to_numpy() == classifier.predict(texts).labels).mean())
                if truth.isin(classifier.labels).all()
                else None
            ),
            "groups": [
                {**group, "described": describe(group)} for group in warm.decision.get("groups", [])[:GROUPS_SHOWN]
            ],
        }
        print(f"{name}: {warm_seconds:.2f} s warm, {cold_seconds:.2f} s cold: {warm.decision['decision']}")
    record("bench_drift", results, args.publish)


if __name__ == "__main__":
    main()
