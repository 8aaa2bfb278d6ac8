"""The preprocess step: clean, encode and tokenize every split; save what preprocessing decided."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from textclf.data.cleaning import CleaningConfig
from textclf.data.preprocess import LabelMap, Preprocessing, Truncation
from textclf.data.sources import LABEL


def run_preprocess(
    split_paths: dict[str, Path],
    output_paths: dict[str, Path],
    preprocessing_path: Path,
    cleaning: CleaningConfig,
    base_model: str,
    max_length: int,
    truncation: Truncation,
    predict_max_length: int,
) -> dict[str, dict[str, int]]:
    """Clean, encode and tokenize every split; the label map comes from the training split only."""
    from textclf.data.preprocess import prepare_split
    from textclf.train.modeling import load_tokenizer

    splits = {name: pd.read_parquet(path) for name, path in split_paths.items()}
    label_map = LabelMap.from_labels(splits["train"][LABEL])
    tokenizer = load_tokenizer(base_model)
    summary = {}
    for name, frame in splits.items():
        prepared = prepare_split(frame, cleaning, tokenizer, label_map, max_length, truncation)
        prepared.frame.to_parquet(output_paths[name], index=False)
        summary[name] = {
            "rows": len(prepared.frame),
            "emptied_by_cleaning": prepared.emptied_by_cleaning,
            "truncated": prepared.truncated,
        }
    Preprocessing(label_map.labels, cleaning.to_dict(), base_model, max_length, truncation, predict_max_length).save(
        preprocessing_path
    )
    return summary
