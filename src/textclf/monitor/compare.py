"""`textclf drift`: any two datasets judged as the monitor judges a window (report, decision, saved report)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from textclf.data.sources import TABLE_SUFFIXES
from textclf.monitor.check import ReferenceModel, judge, load_reference_model
from textclf.monitor.decision import DriftPolicy, DriftWindow
from textclf.monitor.descriptors import whole_word_vocabulary
from textclf.monitor.report import DriftReport, DriftReportSettings, build_drift_report
from textclf.monitor.report_files import ReportArchive


def _with_predictions(frame: pd.DataFrame, model: ReferenceModel) -> pd.DataFrame:
    if not {"predicted_label", "score"} <= set(frame.columns):
        predictions = model.classifier.predict(frame["text"].astype(str).tolist())
        frame["predicted_label"], frame["score"] = predictions.labels, predictions.scores
    return frame


def _table_report(reference: pd.DataFrame, current: pd.DataFrame, settings: DriftReportSettings) -> DriftReport:
    """Two tables and no model: no embeddings; the packaged encoder's vocabulary for the descriptors."""
    from textclf.train.modeling import PACKAGED_MINILM, load_tokenizer

    labels = sorted(set(reference.get("label", pd.Series(dtype=str)).dropna().astype(str)))
    vocabulary = whole_word_vocabulary(load_tokenizer(PACKAGED_MINILM).get_vocab())
    return build_drift_report(reference, current, labels, vocabulary, None, settings)


def compare_datasets(
    reference: str,
    current: str,
    tracking_uri: str,
    model: str = "",
    settings: DriftReportSettings | None = None,
    policy: DriftPolicy | None = None,
    report_dir: Path | None = None,
) -> dict[str, Any]:
    """`textclf drift`: the same check on any two datasets. `reference` is a CSV/JSONL/Parquet table or a
    model (`models:/NAME@ALIAS`, run or directory) whose reference sample is used; `current` a table with a
    `text` column (and `predicted_label`/`score`, else the model predicts them; `label` for quality)."""
    from textclf.data.sources import DataValidationError, read_table
    from textclf.registry.model_uri import resolve_model

    settings = settings or DriftReportSettings()
    current_frame = read_table(current)
    reference_is_table = Path(reference.split("?", 1)[0]).suffix.lower() in TABLE_SUFFIXES
    model_reference = model or ("" if reference_is_table else reference)
    reference_model = None
    if model_reference:
        with tempfile.TemporaryDirectory() as scratch:
            resolved = resolve_model(model_reference, tracking_uri, Path(scratch))
            reference_model = load_reference_model(resolved.directory, resolved.version, settings)
    reference_frame = read_table(reference) if reference_is_table else reference_model.reference
    for name, frame in (("reference", reference_frame), ("current", current_frame)):
        if "text" not in frame.columns:
            raise DataValidationError(f"the {name} data has no 'text' column (columns: {', '.join(frame.columns)})")
    if reference_model is not None:
        reference_frame = _with_predictions(reference_frame, reference_model)
        report = reference_model.report(
            reference_model.as_seen_by_model(reference_frame),
            _with_predictions(current_frame, reference_model),
            settings,
        )
    else:
        report = _table_report(reference_frame, current_frame, settings)
    quality = report.quality
    window = DriftWindow(
        size=len(current_frame),
        model_version=reference_model.version if reference_model else "",
        labelled=quality["labelled"] if quality else 0,
        live_accuracy=quality["accuracy"] if quality else None,
    )
    decision = judge(report, window, policy or DriftPolicy())
    if report_dir is not None:
        archive = ReportArchive(report_dir)
        archive.write("drift_report", "textclf drift", decision, report)
        decision["report"] = str(archive.html_path("drift_report"))
    return decision
