"""Skewed classes: textclf's defaults (class_weighting=auto) against the same run with the plain loss
(class_weighting=none) and TF-IDF + logistic regression, on a skewed subset of AG News.

    make bench-imbalance        # or: python benchmarks/bench_imbalance.py [--rows 2500] [--rare-share 0.02]

Data: ../shared/data/ag_news/train.csv (never committed). After de-duplication the rows are shuffled and a
pool of `--rows` is drawn with class shares World 45 %, Sports 30 %, Business 23 % and Sci/Tech at
`--rare-share` (the rare class); the pool goes through textclf's own ingest split (80/10/10, stratified),
as a user's data would. The test set is drawn from the remaining rows with the same shares but
`--test-multiple` times larger, so the rare class has enough test rows for its F1 to mean something.
Prints a table and writes benchmarks/results/bench_imbalance.json.
"""

from __future__ import annotations

import argparse
import sys

from quality import SEED, SHARED_DATA, parse_overrides, tfidf_and_score, train_and_score
from tables import parse_arguments, record

DATA = SHARED_DATA / "ag_news" / "train.csv"
COMMON_SHARES = {"World": 0.45, "Sports": 0.30, "Business": 0.23}
RARE_CLASS = "Sci/Tech"


def skewed_samples(rows: int, rare_share: float, test_multiple: int):
    """The skewed pool (for ingest) and a disjoint, equally skewed, larger test set."""
    import pandas as pd

    from textclf.data.ingest import remove_duplicates
    from textclf.data.sources import LABEL, DataSource, load_source, validate_frame

    frame = remove_duplicates(validate_frame(load_source(DataSource(str(DATA))))).frame
    frame = frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    scale = (1 - rare_share) / sum(COMMON_SHARES.values())
    shares = {label: share * scale for label, share in COMMON_SHARES.items()} | {RARE_CLASS: rare_share}
    pool, test = [], []
    for label, share in shares.items():
        rows_of_class = frame[frame[LABEL] == label]
        wanted = round(rows * share)
        pool.append(rows_of_class.iloc[:wanted])
        test.append(rows_of_class.iloc[wanted : wanted + wanted * test_multiple])
    return pd.concat(pool, ignore_index=True), pd.concat(test, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2500, help="rows of the skewed pool that ingest splits")
    parser.add_argument("--rare-share", type=float, default=0.02, help="share of the rare class (Sci/Tech)")
    parser.add_argument("--test-multiple", type=int, default=4, help="test rows per pool row, per class")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="TrainingParams KEY=VALUE")
    args = parse_arguments(parser, "bench_imbalance")
    if not DATA.exists():
        sys.exit(f"benchmark data missing: {DATA} (see ../shared/data/README.md); nothing was measured")

    from textclf.data.balance import ClassBalance
    from textclf.data.ingest import split_frame
    from textclf.data.sources import LABEL
    from textclf.runtime.cpu import configure_torch_threads

    configure_torch_threads()
    pool, test = skewed_samples(args.rows, args.rare_share, args.test_multiple)
    splits = split_frame(pool, 0.1, 0.1, SEED)
    balance = ClassBalance.of(splits["train"][LABEL], sorted(set(pool[LABEL])))
    recipe = ", ".join(args.overrides) or "defaults"
    runs = {}
    for weighting in ("auto", "none"):
        overrides = parse_overrides(args.overrides) | {"class_weighting": weighting}
        name = f"textclf {recipe}, class_weighting={weighting}" + (" (the default)" if weighting == "auto" else "")
        runs[name] = train_and_score(splits["train"], splits["validation"], test, overrides)
    runs["TF-IDF + logistic regression"] = tfidf_and_score(splits["train"], test)

    report = {
        "data": str(DATA),
        "overrides": args.overrides,
        "train_class_counts": balance.counts,
        "imbalance_ratio": balance.ratio,
        "test_class_counts": ClassBalance.of(test[LABEL], balance.counts).counts,
        "results": runs,
    }
    print(f"training rows per class: {balance.counts} (largest / smallest = {balance.ratio:.1f})")
    print(f"test rows per class: {report['test_class_counts']}")
    record("bench_imbalance", report, args.publish)


if __name__ == "__main__":
    main()
