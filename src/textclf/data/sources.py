"""Data sources: read a labelled text dataset (file, URL, Hugging Face Hub, demo) and validate its rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

TEXT, LABEL = "text", "label"
# The table formats a dataset path or URL may have, told by its suffix.
TABLE_SUFFIXES = frozenset({".csv", ".jsonl", ".json", ".parquet"})


class DataValidationError(ValueError):
    """The dataset cannot be used as it is; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class DataSource:
    """Where the data comes from and which columns hold the text and the label."""

    spec: str = "demo"
    text_column: str = TEXT
    label_column: str = LABEL
    hf_split: str = "train"
    hf_config: str = ""


def read_table(uri: str) -> pd.DataFrame:
    import fsspec

    suffix = PurePosixPath(uri.split("?", 1)[0]).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataValidationError(
            f"cannot tell the format of {uri!r}: use a .csv, .jsonl or .parquet file, "
            "'hf:<dataset id>' for the Hugging Face Hub, or 'demo'"
        )
    try:
        with fsspec.open(uri, "rb") as handle:
            if suffix == ".csv":
                # Texts stay strings: "NA" or "null" in a review is text, not a missing value.
                return pd.read_csv(handle, dtype=str, keep_default_na=False)
            if suffix == ".parquet":
                return pd.read_parquet(handle)
            return pd.read_json(handle, lines=suffix == ".jsonl", dtype=False)
    except FileNotFoundError as error:
        raise DataValidationError(f"data file not found: {uri}") from error
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError) as error:
        raise DataValidationError(f"cannot read {uri} as {suffix[1:]}: {error}") from error


def _read_hub(source: DataSource) -> pd.DataFrame:
    import datasets

    dataset_id = source.spec.removeprefix("hf:")
    loaded = datasets.load_dataset(dataset_id, source.hf_config or None, split=source.hf_split)
    frame = loaded.to_pandas()
    label_feature = loaded.features.get(source.label_column)
    if isinstance(label_feature, datasets.ClassLabel):
        frame[source.label_column] = [label_feature.int2str(int(value)) for value in frame[source.label_column]]
    return frame


def load_source(source: DataSource) -> pd.DataFrame:
    """Read the raw table for a data source, with the columns it names renamed to `text` and `label`."""
    if source.spec == "demo" or source.spec.startswith("demo:"):
        from textclf.data.demo import DEFAULT_DOMAIN, load_demo

        frame = load_demo(source.spec.partition(":")[2] or DEFAULT_DOMAIN)
        text_column, label_column = TEXT, LABEL
    else:
        frame = _read_hub(source) if source.spec.startswith("hf:") else read_table(source.spec)
        text_column, label_column = source.text_column, source.label_column
    missing = [column for column in (text_column, label_column) if column not in frame.columns]
    if missing:
        raise DataValidationError(
            f"missing column(s) {', '.join(repr(c) for c in missing)} in {source.spec}; "
            f"available columns: {', '.join(map(str, frame.columns))}. "
            "Name the right ones with --text-column / --label-column."
        )
    return frame[[text_column, label_column]].rename(columns={text_column: TEXT, label_column: LABEL})


def _row_numbers(mask: pd.Series, limit: int = 5) -> str:
    rows = [str(i + 1) for i in mask.to_numpy().nonzero()[0][:limit]]
    more = int(mask.sum()) - len(rows)
    return ", ".join(rows) + (f" and {more} more" if more > 0 else "")


def validate_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Check texts and labels; return the frame with labels as class-name strings."""
    if frame.empty:
        raise DataValidationError("the dataset has no rows")
    not_string = ~frame[TEXT].map(lambda value: isinstance(value, str))
    if not_string.any():
        raise DataValidationError(
            f"{int(not_string.sum())} text(s) are not strings (data rows {_row_numbers(not_string)}); "
            "every text must be a non-empty string"
        )
    empty = frame[TEXT].str.strip() == ""
    if empty.any():
        raise DataValidationError(
            f"{int(empty.sum())} text(s) are empty or whitespace only (data rows {_row_numbers(empty)}); "
            "remove those rows or fill in their text"
        )
    missing_label = frame[LABEL].isna() | (frame[LABEL].astype(str).str.strip() == "")
    if missing_label.any():
        raise DataValidationError(
            f"{int(missing_label.sum())} row(s) have no label (data rows {_row_numbers(missing_label)})"
        )
    frame = frame.assign(**{LABEL: frame[LABEL].astype(str).str.strip()})
    classes = frame[LABEL].nunique()
    if classes < 2:
        raise DataValidationError(
            f"found {classes} class ({', '.join(frame[LABEL].unique())}); a classifier needs at least 2"
        )
    return frame


class DatasetConfig(BaseModel):
    """How the data's rows are read and split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text_column: str = Field(DataSource.text_column, description="column holding the text")
    label_column: str = Field(DataSource.label_column, description="column holding the class label")
    hf_split: str = Field(DataSource.hf_split, description="split to load from a Hugging Face dataset")
    hf_config: str = Field("", description="configuration name of a Hugging Face dataset, if it has several")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="share of rows held out for validation")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="share of rows held out for the test split")
