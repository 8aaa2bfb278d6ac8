"""Model quality on the three shared datasets: textclf's training (defaults unless `--set`) against TF-IDF +
logistic regression, same splits.

    python benchmarks/bench_quality.py [--rows 2000] [--datasets ag_news,imdb,sst2] [--set finetune=lora]

Data: ../shared/data (never committed). Test sets: SST-2's dev file as given; for AG News and IMDB a
stratified, held-back 10 % of the de-duplicated train file (at most `--max-test-rows`). From the rest,
`--rows` rows (stratified; 0 = all) are the user's data: 90 % train, 10 % validation, stratified.
Prints a table and writes benchmarks/results/bench_quality[-<label>].json.
"""

from __future__ import annotations

import argparse
import json
import sys

from quality import RESULTS, SEED, SHARED_DATA, parse_overrides, tfidf_and_score, train_and_score

DATASETS = {"ag_news": "ag_news/train.csv", "imdb": "imdb/train.csv", "sst2": "sst2/train.csv"}
SST2_DEV = "sst2/dev.csv"


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000, help="rows of each dataset to train on (0 = all)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: ag_news, imdb, sst2")
    parser.add_argument("--max-test-rows", type=int, default=2000, help="held-back test rows (AG News, IMDB)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="TrainingParams KEY=VALUE")
    parser.add_argument("--label", default="", help="suffix of the results file")
    args = parser.parse_args()
    missing = [
        SHARED_DATA / DATASETS[name] for name in args.datasets.split(",") if not (SHARED_DATA / DATASETS[name]).exists()
    ]
    if missing:
        sys.exit(f"benchmark data missing: {missing} (see ../shared/data/README.md); nothing was measured")

    from textclf.runtime.cpu import configure_torch_threads

    configure_torch_threads()
    overrides = parse_overrides(args.overrides)
    results = {}
    for dataset in args.datasets.split(","):
        train, validation, test = splits_of(dataset, args.rows, args.max_test_rows)
        textclf = train_and_score(train, validation, test, overrides)
        baseline = tfidf_and_score(train, test)
        results[dataset] = {
            "rows": {"train": len(train), "validation": len(validation), "test": len(test)},
            "textclf": textclf,
            "tfidf_logreg": baseline,
        }
        print(
            f"{dataset}: textclf {textclf['metrics']['accuracy']:.4f} ({textclf['train_seconds']:.0f} s), "
            f"TF-IDF {baseline['metrics']['accuracy']:.4f}",
            flush=True,
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_quality{'-' + args.label if args.label else ''}.json"
    out.write_text(json.dumps({"overrides": args.overrides, "rows": args.rows, "results": results}, indent=2))
    recipe = ", ".join(args.overrides) or "defaults"
    print(f"| dataset | train rows | textclf ({recipe}) acc | macro F1 | TF-IDF acc | macro F1 | train s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for dataset, row in results.items():
        ours, theirs = row["textclf"]["metrics"], row["tfidf_logreg"]["metrics"]
        print(
            f"| {dataset} | {row['rows']['train']:,} | {ours['accuracy']:.4f} | {ours['macro_f1']:.4f} "
            f"| {theirs['accuracy']:.4f} | {theirs['macro_f1']:.4f} | {row['textclf']['train_seconds']:.0f} |"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
