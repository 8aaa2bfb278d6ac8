"""The train step: fine-tune with the final parameters and save the serving-ready model directory."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from textclf.data.preprocess import LABEL_ID, Preprocessing
from textclf.data.sources import LABEL, TEXT
from textclf.train.trainer import JobRunner, TrainingParams


def run_train(
    train_path: Path,
    validation_path: Path,
    preprocessing_path: Path,
    params: TrainingParams,
    data_fingerprint: str,
    work_dir: Path,
    model_dir: Path,
    workers: int = 1,
    distributed_trainer: JobRunner | None = None,
) -> dict[str, Any]:
    """Train with the final parameters and save the serving-ready model directory with its reference sample.
    With `workers` > 1, data-parallel: `distributed_trainer` (a cluster's)
    or torchrun with that many processes on this machine (`textclf.train.distributed`)."""
    import mlflow

    from textclf.evaluate.calibration import apply_temperature, fit_temperature
    from textclf.metrics import expected_calibration_error
    from textclf.registry.model_dir import ModelMetadata
    from textclf.serve.backends import TorchBackend
    from textclf.serve.classifier import TextClassifier, predict_probabilities
    from textclf.train.distributed import train_distributed
    from textclf.train.modeling import prediction_max_length
    from textclf.train.trainer import TrainingJob, train_classifier

    preprocessing = Preprocessing.load(preprocessing_path)
    train = pd.read_parquet(train_path)
    params = params.for_model(preprocessing.base_model).for_data(len(train))
    validation = pd.read_parquet(validation_path)
    mlflow.log_params(
        params.to_dict()
        | {
            "workers": workers,
            "base_model": preprocessing.base_model,
            "max_length": preprocessing.max_length,
            "truncation": preprocessing.truncation,
            "predict_max_length": preprocessing.predict_max_length,
        }
    )
    local_trainer = partial(train_distributed, workers=workers) if workers > 1 else train_classifier
    trainer = distributed_trainer or local_trainer
    job = TrainingJob(
        preprocessing.base_model,
        train,
        validation,
        preprocessing.label_map,
        params,
        preprocessing.max_length,
        preprocessing.truncation,
    )
    result = trainer(job, work_dir)
    metrics = result.best_validation
    labels = preprocessing.labels
    true_ids = validation[LABEL_ID].to_numpy()
    predict_length = prediction_max_length(
        result.model, result.tokenizer, preprocessing.max_length, preprocessing.predict_max_length
    )
    # The temperature is fitted on the scores serving will give: those of the prediction length.
    validation_probabilities = (
        result.validation_probabilities
        if predict_length == preprocessing.max_length
        else predict_probabilities(
            result.model,
            result.tokenizer,
            validation[TEXT].tolist(),
            predict_length,
            truncation=preprocessing.truncation,
        )
    )
    temperature = fit_temperature(validation_probabilities, true_ids) if params.calibrate else 1.0
    # Served scores are calibrated, so the drift reference's are too.
    calibrated = apply_temperature(validation_probabilities, temperature)
    best = calibrated.argmax(axis=1)
    reference = pd.DataFrame(
        {
            TEXT: validation[TEXT],
            LABEL: validation[LABEL],
            "predicted_label": [labels[i] for i in best],
            "score": calibrated.max(axis=1),
        }
    )
    summary = {
        "validation_accuracy": metrics["accuracy"],
        "validation_macro_f1": metrics["macro_f1"],
        # Before and after the temperature, both at the prediction length.
        "validation_ece": expected_calibration_error(validation_probabilities, true_ids),
        "temperature": temperature,
        "validation_ece_calibrated": expected_calibration_error(calibrated, true_ids),
        "predict_max_length": predict_length,
        "epochs_run": len(result.history),
        "train_seconds": result.train_seconds,
        "train_samples_per_second": result.train_samples_per_second,
        "bf16": result.bf16,
        "class_weighted": result.class_weights is not None,
    }
    metadata = ModelMetadata(
        base_model=preprocessing.base_model,
        finetune=params.finetune,
        max_length=preprocessing.max_length,
        truncation=preprocessing.truncation,
        predict_max_length=predict_length,
        temperature=temperature,
        labels=list(labels),
        cleaning=preprocessing.cleaning,
        training_params={**params.to_dict(), "class_weights": result.class_weights},
        metrics={"validation": metrics, "history": result.history, **summary},
        data_fingerprint=data_fingerprint,
    )
    # The directory with its ONNX exports and each backend's validation accuracy, for `serve --backend auto`.
    saved = TextClassifier(TorchBackend(result.model), result.tokenizer, metadata).save(model_dir, reference)
    summary |= {
        f"validation_accuracy_{name.replace('-', '_')}": record["validation_accuracy"]
        for name, record in saved.metadata().backends.items()
        if "validation_accuracy" in record
    }
    mlflow.log_metrics({k: float(v) for k, v in summary.items()})
    if result.class_weights is not None:
        mlflow.log_dict(result.class_weights, "training/class_weights.json")
    return summary
