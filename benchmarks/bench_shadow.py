"""Shadow benchmark: the champion's latency with and without a shadow model on 100 % of the requests.

    make bench-shadow            # or: python benchmarks/bench_shadow.py [--model DIR] [--seconds 20]

One `textclf serve` at a time, default settings, the same trained MiniLM model directory as `make bench-serve`
(fine-tuned once on an SST-2 sample and cached). With a shadow, a copy of that directory whose label names are
swapped is the challenger: the same forward pass as a real challenger of the same base model, and every text a
disagreement. `wrk` posts one 20-word text per request to /predict at concurrency 1 and 32. The two servers
take turns for `--rounds` rounds (this machine's speed drifts between minutes; alternating keeps the drift out
of the comparison); the table shows the means, the report each round too. The server's own metrics say how many
texts the shadow classified and how many it skipped because its queue was full (it runs at the lowest CPU
priority, on what the champion leaves). No request logger: what is measured is the shadow's cost to the champion.
Prints a table and writes benchmarks/results/bench_shadow.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
from bench_serve import TWENTY_WORDS, require_data, trained_model, wrk
from tables import RESULTS, parse_arguments, record

from textclf.registry.model_dir import ModelDirectory
from textclf.runtime.local_processes import free_port, running_server

CONCURRENCIES = (1, 32)


def swapped_labels(model: Path, destination: Path) -> Path:
    """The model with its label names reversed: it disagrees with the original on every text."""
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(model, destination)
    directory = ModelDirectory(destination)
    metadata = directory.metadata()
    directory.write_metadata(replace(metadata, labels=list(reversed(metadata.labels))))
    return destination


def counter(url: str, name: str) -> dict[str, float]:
    """A labelled counter's values from the server's /metrics, by label value."""
    values = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(f"{name}_total{{"):
            label, value = line.split("} ")
            values[label.split('"')[1]] = float(value)
    return values


def measure(model: Path, shadow: Path | None, seconds: float) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "textclf.cli", "serve", "--model", str(model), "--port", str(port)]
    command += ["--grpc-port", "0"]
    if shadow is not None:
        command += ["--shadow-model", str(shadow), "--shadow-percent", "100"]
    log = RESULTS / f"bench_shadow_{'with' if shadow else 'without'}.log"
    log.unlink(missing_ok=True)
    result = {}
    with running_server(command, f"{url}/health", log, timeout=300):
        for _ in range(50):
            httpx.post(f"{url}/predict", json={"text": TWENTY_WORDS}, timeout=60)
        time.sleep(1)
        for concurrency in CONCURRENCIES:
            before_texts, before_skipped = (
                counter(url, "textclf_shadow_texts"),
                counter(url, "textclf_shadow_skipped_texts"),
            )
            run = wrk(url, "/predict", {"text": TWENTY_WORDS}, concurrency, seconds)
            time.sleep(2)  # the shadow finishes what it queued
            texts, skipped = counter(url, "textclf_shadow_texts"), counter(url, "textclf_shadow_skipped_texts")
            run["shadowed_texts"] = sum(texts.values()) - sum(before_texts.values())
            run["shadow_skipped_texts"] = sum(skipped.values()) - sum(before_skipped.values())
            result[f"c{concurrency}"] = run
    return result


SHOWN = ("requests_per_second", "p50_ms", "p99_ms", "errors", "shadowed_texts", "shadow_skipped_texts")


def mean_of(runs: list[dict]) -> dict:
    return {key: round(sum(run[key] for run in runs) / len(runs), 2) for key in SHOWN}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a textclf model directory (default: the bench-serve model)")
    parser.add_argument("--seconds", type=float, default=20, help="duration of each wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="turns each server takes")
    args = parse_arguments(parser, "bench_shadow")
    if args.model is None:
        require_data()
    model = args.model or trained_model()
    RESULTS.mkdir(parents=True, exist_ok=True)
    challenger = swapped_labels(model, RESULTS / "shadow-challenger")
    servers = {"without_shadow": None, "with_shadow_100": challenger}
    rounds: dict[str, list[dict]] = {name: [] for name in servers}
    for _ in range(args.rounds):
        for name, shadow in servers.items():
            rounds[name].append(measure(model, shadow, args.seconds))
    means = {
        name: {f"c{c}": mean_of([run[f"c{c}"] for run in runs]) for c in CONCURRENCIES} for name, runs in rounds.items()
    }
    report = {"model": str(model), "seconds": args.seconds, "rounds": rounds, "mean": means}
    record("bench_shadow", report, args.publish)


if __name__ == "__main__":
    main()
