"""The cross-validate step: K models on stratified folds of the training and validation rows, logged to MLflow
as one parent run with a nested run per fold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from textclf.data.cleaning import CleaningConfig
from textclf.data.preprocess import LabelMap, Preprocessing, Truncation
from textclf.data.sources import LABEL, DataSource
from textclf.train.cross_validation import FoldCallback, cross_validate
from textclf.train.trainer import TrainingParams

SKIPPED = {"folds": [], "summary": {"folds": 0}}
"""What the step records when cross-validation is off (cv_folds = 0)."""


def run_cross_validation(
    prepared: pd.DataFrame,
    preprocessing: Preprocessing,
    params: TrainingParams,
    folds: int,
    validation_fraction: float,
    work_dir: Path,
    on_fold: FoldCallback | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Cross-validate the recipe on `prepared` rows inside a parent MLflow run (nested under the active run,
    where there is one) with one nested run per fold; the summary also goes to the enclosing run."""
    import mlflow

    from textclf.evaluate.report import cross_validation_section
    from textclf.registry.tracking import log_flat_metrics, nested_run
    from textclf.train.cross_validation import fold_recipe

    params = fold_recipe(params, preprocessing.base_model, len(prepared), folds, validation_fraction)
    enclosing = mlflow.active_run()

    def log_fold(fold, scores: dict[str, Any]) -> None:
        with nested_run(f"fold {fold.number} of {folds}"):
            mlflow.set_tag("textclf.cv_fold", str(fold.number))
            mlflow.log_params({name: scores[name] for name in ("fold", "train_rows", "validation_rows", "test_rows")})
            log_flat_metrics({name: scores[name] for name in ("accuracy", "macro_f1", "per_class")}, "fold")
            mlflow.log_metrics({"epochs_run": scores["epochs_run"], "train_seconds": scores["train_seconds"]})
        if on_fold is not None:
            on_fold(fold, scores)

    with nested_run(f"cross-validation ({folds} folds)") as parent:
        mlflow.set_tag("textclf.cv", "parent")
        mlflow.log_params(
            params.to_dict()
            | {
                "folds": folds,
                "rows": len(prepared),
                "base_model": preprocessing.base_model,
                "max_length": preprocessing.max_length,
                "truncation": preprocessing.truncation,
                "predict_max_length": preprocessing.predict_max_length,
            }
        )
        result = cross_validate(
            prepared,
            preprocessing.label_map,
            preprocessing.base_model,
            params,
            preprocessing.max_length,
            preprocessing.truncation,
            preprocessing.predict_max_length,
            folds,
            validation_fraction,
            work_dir,
            log_fold,
            show_progress,
        )
        summary_metrics = _summary_metrics(result["summary"])
        mlflow.log_metrics(summary_metrics)
        mlflow.log_dict(result, "cross_validation/cross_validation.json")
        mlflow.log_text(cross_validation_section(result).strip() + "\n", "cross_validation/report.md")
    result["mlflow_run_id"] = parent.info.run_id
    if enclosing is not None:
        mlflow.log_metrics(summary_metrics)
    return result


def _summary_metrics(summary: dict[str, Any]) -> dict[str, float]:
    metrics = {}
    for name in ("accuracy", "macro_f1"):
        metrics |= {f"cv_{name}_mean": summary[name]["mean"], f"cv_{name}_std": summary[name]["std"]}
    for label, f1 in summary["per_class_f1"].items():
        slug = "".join(character if character.isalnum() else "_" for character in label)
        metrics |= {f"cv_f1_{slug}_mean": f1["mean"], f"cv_f1_{slug}_std": f1["std"]}
    return metrics


def run_cross_validate_step(
    train_path: Path,
    validation_path: Path,
    preprocessing_path: Path,
    params: TrainingParams,
    folds: int,
    validation_fraction: float,
    work_dir: Path,
) -> dict[str, Any]:
    """The pipeline's step: the prepared training and validation splits together (the test split stays held
    back for the evaluate step), or nothing when `folds` is 0."""
    if folds == 0:
        return dict(SKIPPED)
    prepared = pd.concat([pd.read_parquet(train_path), pd.read_parquet(validation_path)], ignore_index=True)
    return run_cross_validation(
        prepared, Preprocessing.load(preprocessing_path), params, folds, validation_fraction, work_dir
    )


def prepare_source(
    source: DataSource,
    cleaning: CleaningConfig,
    base_model: str,
    max_length: int,
    truncation: Truncation,
    predict_max_length: int,
) -> tuple[pd.DataFrame, Preprocessing]:
    """A whole data source made ready to cross-validate (`textclf cv`): loaded, validated, de-duplicated,
    cleaned and tokenized as the pipeline's ingest and preprocess steps do, without splitting off a test set."""
    from textclf.data.ingest import remove_duplicates
    from textclf.data.preprocess import prepare_split
    from textclf.data.sources import load_source, validate_frame
    from textclf.train.modeling import load_tokenizer

    frame = remove_duplicates(validate_frame(load_source(source))).frame
    label_map = LabelMap.from_labels(frame[LABEL])
    prepared = prepare_split(frame, cleaning, load_tokenizer(base_model), label_map, max_length, truncation).frame
    return prepared, Preprocessing(
        label_map.labels, cleaning.to_dict(), base_model, max_length, truncation, predict_max_length
    )
