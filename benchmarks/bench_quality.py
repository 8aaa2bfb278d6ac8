"""Model quality on the three shared datasets, same splits: textclf's defaults (`--set` overrides them), textclf
tuned (the pipeline's Optuna study, then training with its choice), TF-IDF + logistic regression, and the base
model untrained; accuracy, macro F1, ECE, time and peak memory.

    python benchmarks/bench_quality.py [--rows 2000] [--datasets ag_news,imdb,sst2] [--variants defaults,tuned]

Data: ../shared/data (never committed). Test sets: SST-2's dev file as given; for AG News and IMDB a
stratified, held-back 10 % of the de-duplicated train file (at most `--max-test-rows`). From the rest,
`--rows` rows (stratified; 0 = all) are the user's data: 90 % train, 10 % validation, stratified.
Prints a table and writes benchmarks/results/bench_quality[-<label>].json.
"""

from __future__ import annotations

import argparse
import sys

from quality import (
    SEED,
    SHARED_DATA,
    parse_overrides,
    tfidf_and_score,
    train_and_score,
    tune_and_score,
    untrained_and_score,
)
from tables import parse_arguments, quality_seconds, record

DATASETS = {"ag_news": "ag_news/train.csv", "imdb": "imdb/train.csv", "sst2": "sst2/train.csv"}
SST2_DEV = "sst2/dev.csv"
VARIANTS = ("defaults", "tuned", "tfidf_logreg", "untrained")


def splits_of(dataset: str, rows: int, max_test_rows: int):
    from sklearn.model_selection import train_test_split

    from textclf.data.ingest import remove_duplicates
    from textclf.data.sources import LABEL, DataSource, load_source, validate_frame

    def load(relative: str):
        return remove_duplicates(validate_frame(load_source(DataSource(str(SHARED_DATA / relative))))).frame

    frame = load(DATASETS[dataset])
    if dataset == "sst2":
        test = load(SST2_DEV)
        rest = frame[~frame["text"].str.lower().isin(set(test["text"].str.lower()))]
    else:
        test_rows = min(max_test_rows, round(0.1 * len(frame)))
        rest, test = train_test_split(frame, test_size=test_rows, stratify=frame[LABEL], random_state=SEED)
    if 0 < rows < len(rest):
        rest, _ = train_test_split(rest, train_size=rows, stratify=rest[LABEL], random_state=SEED)
    train, validation = train_test_split(rest, test_size=0.1, stratify=rest[LABEL], random_state=SEED)
    return train.reset_index(drop=True), validation.reset_index(drop=True), test.reset_index(drop=True)


def main() -> None:
    from textclf.train.tuning import TuningConfig

    tuning = TuningConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000, help="rows of each dataset to train on (0 = all)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: ag_news, imdb, sst2")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--max-test-rows", type=int, default=2000, help="held-back test rows (AG News, IMDB)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="TrainingParams KEY=VALUE")
    parser.add_argument("--trials", type=int, default=tuning.trials, help="tuned: Optuna trials (the pipeline's)")
    parser.add_argument(
        "--tune-max-train-rows",
        type=int,
        default=tuning.max_train_rows,
        help="tuned: training rows each trial sees (the pipeline's)",
    )
    parser.add_argument(
        "--predict-lengths",
        default="",
        help="defaults: also score the trained model predicting at these comma-separated token counts",
    )
    parser.add_argument("--label", default="", help="suffix of the results file")
    args = parse_arguments(parser, "bench_quality")
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        sys.exit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    missing = [
        SHARED_DATA / DATASETS[name] for name in args.datasets.split(",") if not (SHARED_DATA / DATASETS[name]).exists()
    ]
    if missing:
        sys.exit(f"benchmark data missing: {missing} (see ../shared/data/README.md); nothing was measured")

    from textclf.runtime.cpu import configure_torch_threads

    configure_torch_threads()
    overrides = parse_overrides(args.overrides)
    predict_lengths = [int(length) for length in args.predict_lengths.split(",") if length]
    runners = {
        "defaults": lambda train, validation, test: train_and_score(
            train, validation, test, overrides, also_predict_at=predict_lengths
        ),
        "tuned": lambda train, validation, test: tune_and_score(
            train, validation, test, overrides, args.trials, args.tune_max_train_rows
        ),
        "tfidf_logreg": lambda train, validation, test: tfidf_and_score(train, test),
        "untrained": lambda train, validation, test: untrained_and_score(train, test, overrides),
    }
    results = {}
    for dataset in args.datasets.split(","):
        train, validation, test = splits_of(dataset, args.rows, args.max_test_rows)
        results[dataset] = {"rows": {"train": len(train), "validation": len(validation), "test": len(test)}}
        for variant in variants:
            results[dataset][variant] = runners[variant](train, validation, test)
            print(f"{dataset} {variant}: {_line(results[dataset][variant])}", flush=True)
    report = {"overrides": args.overrides, "rows": args.rows, "results": results}
    record(f"bench_quality{'-' + args.label if args.label else ''}", report, args.publish, tables_of="bench_quality")
    recipe = ", ".join(args.overrides) or "defaults"
    print(f"textclf: {recipe}; tuned: {args.trials} trials on {args.tune_max_train_rows} training rows")
    if predict_lengths:
        print("\n| dataset | defaults' test accuracy, predicting at N tokens |")
        print("|---|---|")
        for dataset, row in results.items():
            if "defaults" in row:
                by_length = row["defaults"]["accuracy_by_predict_length"]
                print(f"| {dataset} | " + ", ".join(f"{n}: {accuracy:.4f}" for n, accuracy in by_length.items()) + " |")


def _line(result: dict) -> str:
    metrics = result["metrics"]
    return f"accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f} ({quality_seconds(result):.0f} s)"


if __name__ == "__main__":
    main()
