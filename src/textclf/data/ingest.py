"""Ingest: remove duplicates, split (stratified, seeded, leak-checked), fingerprint and describe a dataset."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import pandas as pd

from textclf.data.balance import ClassBalance
from textclf.data.sources import LABEL, TEXT, DataSource, DataValidationError, load_source, validate_frame

SPLITS = ("train", "validation", "test")


@dataclass
class DedupResult:
    frame: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)


def _normalized_key(texts: pd.Series) -> pd.Series:
    return texts.str.lower().str.split().str.join(" ")


def remove_duplicates(frame: pd.DataFrame) -> DedupResult:
    """Drop exact duplicates, texts repeated with another label, and texts equal up to case and spacing.

    The last kind would otherwise land in two splits and leak test examples into training.
    """
    dropped: dict[str, int] = {}
    exact = frame.duplicated(subset=[TEXT, LABEL], keep="first")
    dropped["exact duplicate (same text and label)"] = int(exact.sum())
    frame = frame[~exact]
    conflicting = frame.duplicated(subset=[TEXT], keep=False)
    dropped["same text with conflicting labels"] = int(conflicting.sum())
    frame = frame[~conflicting]
    near = _normalized_key(frame[TEXT]).duplicated(keep="first")
    dropped["duplicate up to case and whitespace"] = int(near.sum())
    frame = frame[~near].reset_index(drop=True)
    return DedupResult(frame=frame, dropped={reason: n for reason, n in dropped.items() if n})


def min_rows_per_class(validation_fraction: float, test_fraction: float) -> int:
    """Rows a class needs so a stratified split can put at least one of them in every split."""
    return max(3, math.ceil(1 / min(validation_fraction, test_fraction)))


def split_frame(
    frame: pd.DataFrame, validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Stratified, seeded train / validation / test split; fails when a class is too small to split."""
    from sklearn.model_selection import train_test_split

    if not (0 < validation_fraction < 1 and 0 < test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise DataValidationError(
            "validation and test fractions must each lie in (0, 1) and sum to less than 1; got "
            f"{validation_fraction} and {test_fraction}"
        )
    needed = min_rows_per_class(validation_fraction, test_fraction)
    counts = frame[LABEL].value_counts()
    small = counts[counts < needed]
    if not small.empty:
        listed = ", ".join(f"{label!r} ({n})" for label, n in small.items())
        raise DataValidationError(
            f"class(es) with too few rows to split: {listed}; each class needs at least {needed} rows "
            f"for validation_fraction={validation_fraction} and test_fraction={test_fraction}. "
            "Add rows, merge or drop the class, or raise the fractions."
        )
    rest, test = train_test_split(frame, test_size=test_fraction, stratify=frame[LABEL], random_state=seed)
    train, validation = train_test_split(
        rest,
        test_size=validation_fraction / (1 - test_fraction),
        stratify=rest[LABEL],
        random_state=seed,
    )
    splits = {
        "train": train.reset_index(drop=True),
        "validation": validation.reset_index(drop=True),
        "test": test.reset_index(drop=True),
    }
    check_no_leak(splits)
    return splits


def check_no_leak(splits: dict[str, pd.DataFrame]) -> None:
    """Fail if any text (up to case and whitespace) appears in more than one split."""
    seen: dict[str, str] = {}
    for name, split in splits.items():
        for key in _normalized_key(split[TEXT]).unique():
            if key in seen and seen[key] != name:
                raise DataValidationError(f"text leaks between the {seen[key]} and {name} splits: {key[:80]!r}")
            seen[key] = name


def fingerprint(frame: pd.DataFrame) -> str:
    """Order-independent content hash of (text, label) pairs: the same data gives the same fingerprint."""
    row_hashes = sorted(
        hashlib.sha256(f"{label}\x1f{text}".encode()).digest()
        for text, label in zip(frame[TEXT], frame[LABEL], strict=True)
    )
    return hashlib.sha256(b"".join(row_hashes)).hexdigest()[:16]


@dataclass
class IngestResult:
    splits: dict[str, pd.DataFrame]
    rows_read: int
    dropped: dict[str, int]
    fingerprint: str
    source: DataSource


def ingest(
    source: DataSource,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    extra_train: DataSource | None = None,
) -> IngestResult:
    """Load, validate, de-duplicate and split a dataset.

    `extra_train` (feedback labels, new labelled files) joins the training split only, after the split: the
    validation and test splits stay exactly those of `source`, so a retrained model is judged on the same
    frozen test split as the champion. Extra rows whose text is in those splits are dropped."""
    raw = load_source(source)
    valid = validate_frame(raw)
    deduped = remove_duplicates(valid)
    splits = split_frame(deduped.frame, validation_fraction, test_fraction, seed)
    dropped = dict(deduped.dropped)
    rows_read = len(raw)
    if extra_train is not None:
        extra_raw = load_source(extra_train)
        rows_read += len(extra_raw)
        splits["train"], extra_dropped = _add_training_rows(splits, validate_frame(extra_raw))
        dropped.update({f"extra training data: {reason}": n for reason, n in extra_dropped.items() if n})
        check_no_leak(splits)
    kept = pd.concat(list(splits.values()), ignore_index=True)
    return IngestResult(
        splits=splits,
        rows_read=rows_read,
        dropped=dropped,
        fingerprint=fingerprint(kept),
        source=source,
    )


def _add_training_rows(splits: dict[str, pd.DataFrame], extra: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    held_out = set(_normalized_key(pd.concat([splits["validation"][TEXT], splits["test"][TEXT]])))
    in_held_out = _normalized_key(extra[TEXT]).isin(held_out)
    combined = remove_duplicates(pd.concat([splits["train"], extra[~in_held_out]], ignore_index=True))
    dropped = {"text in the validation or test split": int(in_held_out.sum()), **combined.dropped}
    return combined.frame, dropped


def _length_row(name: str, texts: pd.Series) -> str:
    chars = texts.str.len()
    words = texts.str.split().str.len()
    return (
        f"| {name} | {len(texts):,} | {int(words.median())} | {int(words.quantile(0.95))} | {int(words.max())} "
        f"| {int(chars.median())} | {int(chars.max())} |"
    )


def data_report(result: IngestResult) -> str:
    """A Markdown description of the data: what was read, dropped and why, class balance, text lengths."""
    kept = sum(len(split) for split in result.splits.values())
    labels = sorted(set().union(*(split[LABEL].unique() for split in result.splits.values())))
    lines = [
        "# Data report",
        "",
        f"- Source: `{result.source.spec}`",
        f"- Rows read: {result.rows_read:,}; rows kept: {kept:,}",
        f"- Fingerprint: `{result.fingerprint}`",
        "",
        "## Dropped rows",
        "",
    ]
    if result.dropped:
        lines += ["| reason | rows |", "|---|---:|"]
        lines += [f"| {reason} | {n:,} |" for reason, n in result.dropped.items()]
    else:
        lines.append("None.")
    lines += ["", "## Class balance", "", "| class | " + " | ".join(SPLITS) + " |", "|---|" + "---:|" * 3]
    for label in labels:
        cells = []
        for name in SPLITS:
            split = result.splits[name]
            count = int((split[LABEL] == label).sum())
            cells.append(f"{count:,} ({count / len(split):.1%})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    warnings = ClassBalance.of(result.splits["train"][LABEL], labels).warnings()
    if warnings:
        lines += ["", "In the training split:", *(f"- **Warning:** {warning}" for warning in warnings)]
    lines += [
        "",
        "## Text length",
        "",
        "| split | rows | words p50 | words p95 | words max | chars p50 | chars max |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [_length_row(name, result.splits[name][TEXT]) for name in SPLITS]
    return "\n".join(lines) + "\n"
