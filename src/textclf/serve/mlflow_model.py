"""The registered model as an MLflow model: a `pyfunc` whose one artifact is the textclf model directory.

`mlflow.pyfunc.load_model("models:/textclf@champion").predict(pd.DataFrame({"text": [...]}))` answers with one row
per text: `label`, `score` (the calibrated probability of the label) and `probabilities` (one per class, in the
order of the model's `labels`, which the MLmodel's metadata lists). `mlflow models serve` serves the same
(`--env-manager local`: the model needs textclf installed, which no package index holds). The model directory
sits inside the logged model at the path the MLmodel file records for the artifact (`artifacts/<folder>` as MLflow
3.17 lays it out, `mlflow/pyfunc/model.py` `_save_model_with_class_artifacts_params`); the registered version's
`model_directory` tag repeats it, for KServe's storage initializer, which downloads that folder alone.

Versions registered before this (the directory logged as raw run artifacts) have no MLmodel file; every reader
goes through `textclf.registry.model_dir.ModelDirectory.located_in`, which takes both layouts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from textclf.data.sources import TEXT
from textclf.registry.model_dir import MODEL_DIRECTORY_ARTIFACT
from textclf.serve.classifier import load_fastest

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo

MODEL_ARTIFACT_PATH = "model"
"""The logged model's name in its run (and the raw artifact folder of versions registered before pyfuncs)."""


class TextClassifierPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the directory with the fastest accurate backend installed (as `textclf serve --backend auto`)."""

    def load_context(self, context: Any) -> None:
        self.classifier = load_fastest(Path(context.artifacts[MODEL_DIRECTORY_ARTIFACT])).classifier

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        texts = _texts_of(model_input)
        predictions = self.classifier.predict(texts)
        return pd.DataFrame(
            {
                "label": predictions.labels,
                "score": predictions.scores.astype(np.float64),
                "probabilities": [row.tolist() for row in predictions.probabilities.astype(np.float64)],
            }
        )


def _texts_of(model_input: pd.DataFrame) -> list[str]:
    """The texts of the input, which MLflow has checked against the signature."""
    if TEXT not in model_input.columns:
        raise ValueError(f"the input needs a {TEXT!r} column; it has {list(model_input.columns)}")
    return model_input[TEXT].astype(str).tolist()


def signature() -> ModelSignature:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Array

    return ModelSignature(
        inputs=Schema([ColSpec(DataType.string, TEXT)]),
        outputs=Schema(
            [
                ColSpec(DataType.string, "label"),
                ColSpec(DataType.double, "score"),
                ColSpec(Array(DataType.double), "probabilities"),
            ]
        ),
    )


def log_pyfunc_model(model_dir: Path, labels: list[str], input_texts: list[str]) -> ModelInfo:
    """Log the directory as the active run's MLflow model, with its signature and an input example."""
    from textclf import __version__

    return mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT_PATH,
        python_model=TextClassifierPyfunc(),
        artifacts={MODEL_DIRECTORY_ARTIFACT: str(model_dir)},
        signature=signature(),
        input_example=pd.DataFrame({TEXT: input_texts}),
        metadata={"labels": labels, "textclf_version": __version__},
        # Listed, not inferred: inferring loads the model in a subprocess. textclf is in no package index, so
        # `mlflow models serve` takes `--env-manager local` (an environment with textclf installed).
        pip_requirements=[f"textclf=={__version__}"],
    )


def model_directory_in(info: ModelInfo) -> str:
    """Where the logged model keeps the directory, relative to the logged model's root."""
    return info.flavors["python_function"]["artifacts"][MODEL_DIRECTORY_ARTIFACT]["path"]
