"""Ingest: loading, validation messages, de-duplication, splitting, leak check, report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from textclf.data.ingest import check_no_leak, data_report, fingerprint, ingest, remove_duplicates, split_frame
from textclf.data.sources import DataSource, DataValidationError, load_source, validate_frame

pytestmark = pytest.mark.unit


def frame(texts, labels) -> pd.DataFrame:
    return pd.DataFrame({"text": texts, "label": labels})


def balanced(n_per_class: int = 20) -> pd.DataFrame:
    texts = [f"review number {i} is {'great' if i % 2 else 'awful'}" for i in range(2 * n_per_class)]
    labels = ["pos" if i % 2 else "neg" for i in range(2 * n_per_class)]
    return frame(texts, labels)


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_loads_every_file_format_with_named_columns(tmp_path: Path, suffix: str) -> None:
    data = pd.DataFrame({"body": ["good", "bad"], "sentiment": ["p", "n"], "extra": [1, 2]})
    path = tmp_path / f"data.{suffix}"
    if suffix == "csv":
        data.to_csv(path, index=False)
    elif suffix == "jsonl":
        data.to_json(path, orient="records", lines=True)
    else:
        data.to_parquet(path)
    loaded = load_source(DataSource(str(path), text_column="body", label_column="sentiment"))
    assert loaded.to_dict("list") == {"text": ["good", "bad"], "label": ["p", "n"]}


def test_loads_through_fsspec_urls(tmp_path: Path) -> None:
    frame(["good", "bad"], ["p", "n"]).to_csv(tmp_path / "d.csv", index=False)
    loaded = load_source(DataSource(f"file://{tmp_path / 'd.csv'}"))
    assert loaded["text"].tolist() == ["good", "bad"]


def test_csv_keeps_na_like_texts_as_text(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("text,label\nNA,p\nnull,n\n")
    assert load_source(DataSource(str(tmp_path / "d.csv")))["text"].tolist() == ["NA", "null"]


def test_missing_columns_are_named_with_the_available_ones(tmp_path: Path) -> None:
    frame(["a"], ["b"]).rename(columns={"text": "review"}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataValidationError, match=r"missing column\(s\) 'text'.*available columns: review, label"):
        load_source(DataSource(str(tmp_path / "d.csv")))


def test_unreadable_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "d.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataValidationError, match=r"cannot read .*d\.parquet as parquet"):
        load_source(DataSource(str(tmp_path / "d.parquet")))


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="data file not found"):
        load_source(DataSource(str(tmp_path / "absent.csv")))


def test_unknown_format_lists_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"cannot tell the format.*\.csv, \.jsonl or \.parquet"):
        load_source(DataSource(str(tmp_path / "data.xlsx")))


def test_non_string_texts_are_rejected_with_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [{"text": "ok", "label": "a"}, {"text": 5, "label": "b"}]))
    with pytest.raises(DataValidationError, match=r"1 text\(s\) are not strings \(data rows 2\)"):
        validate_frame(load_source(DataSource(str(path))))


def test_empty_texts_are_rejected_with_row_numbers() -> None:
    with pytest.raises(DataValidationError, match=r"2 text\(s\) are empty or whitespace only \(data rows 2, 3\)"):
        validate_frame(frame(["fine", "", "   "], ["a", "b", "a"]))


def test_missing_labels_are_rejected() -> None:
    with pytest.raises(DataValidationError, match=r"1 row\(s\) have no label \(data rows 2\)"):
        validate_frame(frame(["x", "y"], ["a", None]))


def test_a_single_class_is_rejected() -> None:
    with pytest.raises(DataValidationError, match="at least 2"):
        validate_frame(frame(["x", "y"], ["a", "a"]))


def test_empty_dataset_is_rejected() -> None:
    with pytest.raises(DataValidationError, match="no rows"):
        validate_frame(frame([], []))


def test_labels_become_strings() -> None:
    assert validate_frame(frame(["x", "y"], [0, 1]))["label"].tolist() == ["0", "1"]


def test_duplicates_are_removed_and_counted_by_reason() -> None:
    result = remove_duplicates(
        frame(
            ["same", "same", "clash", "clash", "Case  Text", "case text", "unique"],
            ["a", "a", "a", "b", "a", "a", "b"],
        )
    )
    assert result.frame["text"].tolist() == ["same", "Case  Text", "unique"]
    assert result.dropped == {
        "exact duplicate (same text and label)": 1,
        "same text with conflicting labels": 2,
        "duplicate up to case and whitespace": 1,
    }


def test_split_is_stratified_seeded_and_disjoint() -> None:
    data = balanced(50)
    first = split_frame(data, 0.1, 0.2, seed=7)
    again = split_frame(data, 0.1, 0.2, seed=7)
    other = split_frame(data, 0.1, 0.2, seed=8)
    assert {name: len(split) for name, split in first.items()} == {"train": 70, "validation": 10, "test": 20}
    assert first["test"]["label"].value_counts().to_dict() == {"neg": 10, "pos": 10}
    assert first["test"]["text"].tolist() == again["test"]["text"].tolist()
    assert first["test"]["text"].tolist() != other["test"]["text"].tolist()
    seen = [set(split["text"]) for split in first.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


def test_too_small_class_names_the_class_and_the_need() -> None:
    data = pd.concat([balanced(20), frame(["rare one", "rare two", "rare three"], ["rare"] * 3)])
    with pytest.raises(DataValidationError, match=r"too few rows to split: 'rare' \(3\); each class needs at least 10"):
        split_frame(data, 0.1, 0.1, seed=0)


def test_invalid_fractions_are_rejected() -> None:
    with pytest.raises(DataValidationError, match="sum to less than 1"):
        split_frame(balanced(), 0.5, 0.5, seed=0)


def test_leak_check_catches_texts_equal_up_to_case() -> None:
    with pytest.raises(DataValidationError, match="leaks between the train and test splits"):
        check_no_leak({"train": frame(["Hello World"], ["a"]), "test": frame(["hello   world"], ["a"])})


def test_fingerprint_ignores_row_order_and_sees_label_changes() -> None:
    data = balanced(5)
    assert fingerprint(data) == fingerprint(data.sample(frac=1, random_state=1))
    changed = data.copy()
    changed.loc[0, "label"] = "other"
    assert fingerprint(data) != fingerprint(changed)


def test_ingest_and_report_on_the_fixture(reviews_csv: Path) -> None:
    result = ingest(DataSource(str(reviews_csv)), 0.15, 0.15, seed=1)
    assert sum(len(s) for s in result.splits.values()) == 70
    report = data_report(result)
    for expected in ("# Data report", "Rows read: 70", "| negative |", "## Text length", "None."):
        assert expected in report


def test_extra_training_rows_join_only_the_training_split(reviews_csv: Path, tmp_path: Path) -> None:
    plain = ingest(DataSource(str(reviews_csv)), 0.15, 0.15, seed=1)
    test_text = plain.splits["test"]["text"].iloc[0]
    extra = frame(
        ["lol this is gr8 #winning", "ugh mondays", test_text.upper(), "ugh mondays"],
        ["positive", "negative", "positive", "negative"],
    )
    extra.to_csv(tmp_path / "feedback.csv", index=False)
    result = ingest(
        DataSource(str(reviews_csv)), 0.15, 0.15, seed=1, extra_train=DataSource(str(tmp_path / "feedback.csv"))
    )
    for name in ("validation", "test"):
        pd.testing.assert_frame_equal(result.splits[name], plain.splits[name])
    assert len(result.splits["train"]) == len(plain.splits["train"]) + 2
    assert {"lol this is gr8 #winning", "ugh mondays"} <= set(result.splits["train"]["text"])
    assert result.dropped["extra training data: text in the validation or test split"] == 1
    assert result.dropped["extra training data: exact duplicate (same text and label)"] == 1
    assert result.fingerprint != plain.fingerprint
    assert result.rows_read == 74


def test_hugging_face_datasets_load_through_load_dataset_with_class_names(tmp_path: Path) -> None:
    """The `hf:` path runs the real `datasets.load_dataset`; a local dataset folder stands in for the Hub."""
    import datasets

    features = datasets.Features(
        {"title": datasets.Value("string"), "topic": datasets.ClassLabel(names=["World", "Sports"])}
    )
    (tmp_path / "data").mkdir()
    datasets.Dataset.from_dict(
        {"title": ["Election results", "Cup final"], "topic": [0, 1]}, features=features
    ).to_parquet(tmp_path / "data" / "train-00000-of-00001.parquet")
    loaded = load_source(DataSource(f"hf:{tmp_path}", text_column="title", label_column="topic", hf_split="train"))
    assert loaded.to_dict("list") == {"text": ["Election results", "Cup final"], "label": ["World", "Sports"]}
