"""The train step: fine-tune with the final parameters and save the serving-ready model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from textclf.data.preprocess import Preprocessing
from textclf.data.sources import LABEL, TEXT
from textclf.train.trainer import TrainingParams


def run_train(
    train_path: Path,
    validation_path: Path,
    preprocessing_path: Path,
    params: TrainingParams,
    data_fingerprint: str,
    work_dir: Path,
    model_dir: Path,
) -> dict[str, Any]:
    """Train with the final parameters and save the serving-ready model directory with its reference sample."""
    import mlflow

    from textclf.registry.model_dir import ModelMetadata, save_model_directory
    from textclf.train.trainer import train_classifier

    preprocessing = Preprocessing.load(preprocessing_path)
    validation = pd.read_parquet(validation_path)
    mlflow.log_params(
        params.to_dict() | {"base_model": preprocessing.base_model, "max_length": preprocessing.max_length}
    )
    result = train_classifier(
        preprocessing.base_model,
        pd.read_parquet(train_path),
        validation,
        preprocessing.label_map,
        params,
        work_dir,
        preprocessing.max_length,
    )
    metrics = result.best_validation
    labels = preprocessing.labels
    best = result.validation_probabilities.argmax(axis=1)
    reference = pd.DataFrame(
        {
            TEXT: validation[TEXT],
            LABEL: validation[LABEL],
            "predicted_label": [labels[i] for i in best],
            "score": result.validation_probabilities.max(axis=1),
        }
    )
    summary = {
        "validation_accuracy": metrics["accuracy"],
        "validation_macro_f1": metrics["macro_f1"],
        "validation_ece": metrics["ece"],
        "epochs_run": len(result.history),
        "train_seconds": result.train_seconds,
        "train_samples_per_second": result.train_samples_per_second,
        "bf16": result.bf16,
    }
    metadata = ModelMetadata(
        base_model=preprocessing.base_model,
        finetune=params.finetune,
        max_length=preprocessing.max_length,
        labels=list(labels),
        cleaning=preprocessing.cleaning,
        training_params=params.to_dict(),
        metrics={"validation": metrics, "history": result.history, **summary},
        data_fingerprint=data_fingerprint,
    )
    save_model_directory(model_dir, result.model, result.tokenizer, metadata, reference)
    mlflow.log_metrics({k: float(v) for k, v in summary.items()})
    return summary
