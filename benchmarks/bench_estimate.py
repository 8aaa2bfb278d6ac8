"""How good is the monitor's label-free accuracy estimate? Estimated against true accuracy on real shifts.

    make bench-estimate         # or: python benchmarks/bench_estimate.py [--window 1000] [--windows 5]

Two models are trained as the pipeline trains them (the packaged MiniLM, the defaults, the temperature fitted on
the validation split), then windows of texts they never saw are predicted, and each window's accuracy is estimated
from the calibrated probabilities alone (`textclf.monitor.estimate`, what every drift check does) and compared
with the truth:

- movie reviews (the demo data, 3,000 training rows): held-out movie reviews (in domain), and the demo's other
  domains: tweets, Amazon reviews, New York Times editorials (domain shift);
- SST-2 phrases (../shared/data/sst2/train.csv, 3,000 training rows): held-out phrases (in domain), the SST-2 dev
  sentences and IMDB reviews (domain shift);
- for both: label shift (held-out windows resampled to 90 % one class) and concept shift (held-out windows with a
  random 30 % of their true labels swapped, constructed: what a changed meaning of the classes looks like to the
  model, which still reads the same texts).

A window holds the monitor's default window size of texts (`--window`), at most `--windows` disjoint windows per
scenario. Per scenario: mean true and estimated accuracy, the mean and largest absolute error, how many windows'
95 % intervals held the truth, and the same error for macro F1. Beside it, for comparison, the accuracy that average
thresholded confidence (Garg et al., ICLR 2022) estimates from the same scores and the validation split's. Prints a
table; writes
benchmarks/results/bench_estimate.json. Fails without ../shared/data.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
from quality import SEED, SHARED_DATA, CalibratedModel
from tables import parse_arguments, record

from textclf.config import MonitorConfig
from textclf.monitor.estimate import ESTIMATE_LEVEL

SST2 = SHARED_DATA / "sst2"
IMDB = SHARED_DATA / "imdb" / "train.csv"
TRAIN_ROWS = 3000
VALIDATION_ROWS = 400
LABEL_SHIFT_SHARE = 0.9
CONCEPT_SHIFT_SWAPPED = 0.3
IN_DOMAIN_TARGET, SHIFTED_TARGET = 0.02, 0.05
"""Issue 36's targets: the largest mean absolute error in domain and under the demo's domain shifts."""


def windows_of(frame: pd.DataFrame, size: int, most: int) -> list[pd.DataFrame]:
    frame = frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    count = min(most, len(frame) // size) or 1
    return [frame.iloc[i * size : (i + 1) * size] for i in range(count)]


def label_shifted(frame: pd.DataFrame, size: int, most: int, seed: int) -> list[pd.DataFrame]:
    """Windows with `LABEL_SHIFT_SHARE` of their texts from the first class, drawn with replacement of windows."""
    first = sorted(frame["label"].unique())[0]
    rng = np.random.default_rng(seed)
    windows = []
    for _ in range(most):
        majority = frame[frame["label"] == first].sample(round(size * LABEL_SHIFT_SHARE), random_state=rng)
        minority = frame[frame["label"] != first].sample(size - len(majority), random_state=rng)
        windows.append(pd.concat([majority, minority]))
    return windows


def concept_shifted(windows: list[pd.DataFrame], labels: tuple[str, ...], seed: int) -> list[pd.DataFrame]:
    """The same texts with a random `CONCEPT_SHIFT_SWAPPED` of their true labels changed to another class."""
    rng = np.random.default_rng(seed)
    shifted = []
    for window in windows:
        truth = window["label"].to_numpy().copy()
        chosen = rng.random(len(truth)) < CONCEPT_SHIFT_SWAPPED
        truth[chosen] = [rng.choice([label for label in labels if label != old]) for old in truth[chosen]]
        shifted.append(window.assign(label=truth))
    return shifted


def scored_windows(model: CalibratedModel, windows: list[pd.DataFrame]) -> list[dict]:
    from sklearn.metrics import f1_score

    from textclf.data.preprocess import LABEL_ID
    from textclf.monitor.estimate import confidence_threshold, estimate_performance, thresholded_accuracy

    calibration_error = model.validation_ece
    threshold = confidence_threshold(*model.validation_scores)
    results = []
    for window in windows:
        rows = model.prepared(window)
        probabilities = model.probabilities(rows)
        truth, predicted = rows[LABEL_ID].to_numpy(), probabilities.argmax(axis=1)
        estimate = estimate_performance(probabilities, model.label_map.labels, calibration_error)
        accuracy = float((truth == predicted).mean())
        macro_f1 = float(
            f1_score(truth, predicted, average="macro", labels=range(len(model.label_map.labels)), zero_division=0)
        )
        low, high = estimate.accuracy_interval
        results.append(
            {
                "texts": len(rows),
                "true_accuracy": accuracy,
                "estimated_accuracy": estimate.accuracy,
                "interval": [low, high],
                "covered": bool(low <= accuracy <= high),
                "true_macro_f1": macro_f1,
                "estimated_macro_f1": estimate.macro_f1,
                "thresholded_accuracy": thresholded_accuracy(probabilities.max(axis=1), threshold),
                "true_share_of_first_class": float((truth == 0).mean()),
                "predicted_share_of_first_class": float((predicted == 0).mean()),
            }
        )
    return results


def summary(kind: str, windows: list[dict]) -> dict:
    errors = [abs(w["estimated_accuracy"] - w["true_accuracy"]) for w in windows]
    f1_errors = [abs(w["estimated_macro_f1"] - w["true_macro_f1"]) for w in windows]
    thresholded_errors = [abs(w["thresholded_accuracy"] - w["true_accuracy"]) for w in windows]
    target = {"in domain": IN_DOMAIN_TARGET, "domain shift": SHIFTED_TARGET}.get(kind)
    return {
        "kind": kind,
        "windows": windows,
        "texts_per_window": int(np.mean([w["texts"] for w in windows])),
        "true_accuracy": float(np.mean([w["true_accuracy"] for w in windows])),
        "estimated_accuracy": float(np.mean([w["estimated_accuracy"] for w in windows])),
        "mean_absolute_error": float(np.mean(errors)),
        "largest_absolute_error": float(np.max(errors)),
        "covered": sum(w["covered"] for w in windows),
        "macro_f1_mean_absolute_error": float(np.mean(f1_errors)),
        "thresholded_accuracy": float(np.mean([w["thresholded_accuracy"] for w in windows])),
        "thresholded_mean_absolute_error": float(np.mean(thresholded_errors)),
        "target": target,
        "meets_target": None if target is None else bool(np.mean(errors) <= target),
    }


def demo_data() -> dict[str, pd.DataFrame]:
    from textclf.data.demo import DOMAINS, load_demo

    return {domain: load_demo(domain)[["text", "label"]] for domain in DOMAINS}


def shared_data() -> dict[str, pd.DataFrame]:
    sst2 = pd.read_csv(SST2 / "train.csv")
    dev = pd.read_csv(SST2 / "dev.csv")
    imdb = pd.read_csv(IMDB).assign(label=lambda f: f["label"].map({"neg": "negative", "pos": "positive"}))
    return {"SST-2 phrases": sst2, "SST-2 dev sentences": dev, "IMDB reviews": imdb}


def run_model(name: str, frames: dict[str, pd.DataFrame], trained_on: str, args: argparse.Namespace) -> dict:
    from textclf.data.ingest import remove_duplicates

    pool = remove_duplicates(frames[trained_on]).frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    train, validation = pool.iloc[:TRAIN_ROWS], pool.iloc[TRAIN_ROWS : TRAIN_ROWS + VALIDATION_ROWS]
    held_out = pool.iloc[TRAIN_ROWS + VALIDATION_ROWS :]
    seen = set(train["text"]) | set(validation["text"])
    started = time.perf_counter()
    model = CalibratedModel(train, validation, {})
    train_seconds = time.perf_counter() - started
    print(f"{name}: trained on {len(train)} rows in {train_seconds:.0f} s (temperature {model.temperature:.2f})")
    in_domain = windows_of(held_out, args.window, args.windows)
    scenarios = {f"{trained_on} (in domain)": summary("in domain", scored_windows(model, in_domain))}
    for domain, frame in frames.items():
        if domain != trained_on:
            unseen = frame[~frame["text"].isin(seen)]
            scenarios[domain] = summary(
                "domain shift", scored_windows(model, windows_of(unseen, args.window, args.windows))
            )
    shifted = label_shifted(held_out, args.window, args.windows, SEED)
    first = sorted(held_out["label"].unique())[0]
    scenarios[f"label shift ({LABEL_SHIFT_SHARE:.0%} {first})"] = summary("label shift", scored_windows(model, shifted))
    swapped = concept_shifted(in_domain, model.label_map.labels, SEED)
    scenarios[f"concept shift ({CONCEPT_SHIFT_SWAPPED:.0%} of labels swapped)"] = summary(
        "concept shift", scored_windows(model, swapped)
    )
    return {
        "trained_on": trained_on,
        "train_rows": model.train_rows,
        "train_seconds": train_seconds,
        "temperature": model.temperature,
        "validation_ece_calibrated": model.validation_ece,
        "scenarios": scenarios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--window", type=int, default=MonitorConfig().window_size, help="texts per window (the monitor's default)"
    )
    parser.add_argument("--windows", type=int, default=5, help="most disjoint windows per scenario")
    args = parse_arguments(parser, "bench_estimate")
    if not (SST2 / "train.csv").exists() or not IMDB.exists():
        sys.exit(f"benchmark data missing under {SHARED_DATA} (see ../shared/data/README.md); nothing was measured")

    from textclf.runtime.cpu import configure_torch_threads

    configure_torch_threads()
    report = {
        "window": args.window,
        "level": ESTIMATE_LEVEL,
        "models": {
            "movie reviews (demo data)": run_model("movie reviews", demo_data(), "movie_reviews", args),
            "SST-2 phrases": run_model("SST-2", shared_data(), "SST-2 phrases", args),
        },
    }
    record("bench_estimate", report, args.publish)


if __name__ == "__main__":
    main()
