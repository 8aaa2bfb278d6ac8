"""The model directory (the "model directory" contract, docs/architecture.md): a Hugging Face model folder
plus textclf metadata and a reference sample.

`AutoModelForSequenceClassification` and `AutoTokenizer` load the folder as it is; `textclf.json` holds
what serving and monitoring need besides the weights; `reference.parquet` is the drift reference.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from textclf import __version__
from textclf.data.preprocess import PREDICT_AT_TRAINING_LENGTH, RECORDED_BEFORE_TRUNCATION
from textclf.names import MODEL_METADATA_FILE, ONNX_INT8_MODEL_FILE, ONNX_MODEL_FILE, REFERENCE_SAMPLE_FILE

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

REFERENCE_COLUMNS = ["text", "label", "predicted_label", "score"]
ONNX_FILES: dict[str, str] = {"onnx": ONNX_MODEL_FILE, "onnx-int8": ONNX_INT8_MODEL_FILE}
"""Each ONNX backend's graph in the directory, by backend name."""

MLMODEL_FILE = "MLmodel"
MODEL_DIRECTORY_ARTIFACT = "model_dir"
"""The name of the directory among a registered MLflow model's artifacts (`textclf.serve.mlflow_model`)."""
MODEL_DIRECTORY_TAG = "model_directory"
"""On a registered version: the directory's path inside the version's artifacts (absent: the root)."""
_RECORDED_LIBRARIES = ("torch", "transformers", "peft", "tokenizers", "scikit-learn", "mlflow", "kfp")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "textclf": __version__}
    for name in _RECORDED_LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class ModelMetadata:
    base_model: str
    finetune: str
    max_length: int
    labels: list[str]
    cleaning: dict[str, bool]
    training_params: dict[str, Any]
    metrics: dict[str, Any]
    data_fingerprint: str
    truncation: str = RECORDED_BEFORE_TRUNCATION
    """How long texts were cut to max_length in training ("head" or "head_tail"); serving cuts the same way."""
    predict_max_length: int = PREDICT_AT_TRAINING_LENGTH
    """Tokens per text at prediction (evaluation, serving), resolved for the encoder; 0 in directories written
    before it was recorded: `max_length`."""
    temperature: float = 1.0
    """Serving divides the logits by it (temperature scaling fitted on the validation split; 1 = none)."""
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per inference backend (torch, onnx, onnx-int8): its validation accuracy and agreement with PyTorch, which
    `textclf serve --backend auto` reads; empty in directories trained before backends were measured."""
    library_versions: dict[str, str] = field(default_factory=library_versions)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    format_version: int = 1

    @property
    def prediction_length(self) -> int:
        """The tokens per text a prediction reads."""
        return self.predict_max_length or self.max_length


@dataclass(frozen=True)
class ModelDirectory:
    """The one reader and writer of a model directory's files: the Hugging Face weights and tokenizer,
    `textclf.json` (metadata: labels, cleaning, lengths, temperature, each backend's measured accuracy), the drift
    reference sample and the ONNX exports. Everything else (training, evaluation, serving, the monitor, the MLflow
    model) goes through it, or through the `TextClassifier` loaded from it."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def located_in(cls, root: Path) -> ModelDirectory:
        """The model directory within a downloaded registry version or run artifact: the root itself (versions
        logged as raw artifacts), or the artifact the root's MLmodel file names (versions logged as MLflow
        models)."""
        import yaml

        root = Path(root)
        if (root / MODEL_METADATA_FILE).exists() or not (root / MLMODEL_FILE).exists():
            return cls(root)
        flavor = yaml.safe_load((root / MLMODEL_FILE).read_text()).get("flavors", {}).get("python_function", {})
        artifact = flavor.get("artifacts", {}).get(MODEL_DIRECTORY_ARTIFACT)
        if artifact is None:
            raise FileNotFoundError(f"{root} is an MLflow model but holds no textclf model directory")
        return cls(root / artifact["path"])

    def is_model_directory(self) -> bool:
        return (self.path / MODEL_METADATA_FILE).is_file()

    def metadata(self) -> ModelMetadata:
        path = self.path / MODEL_METADATA_FILE
        if not path.exists():
            raise FileNotFoundError(f"{self.path} is not a textclf model directory: {MODEL_METADATA_FILE} is missing")
        return ModelMetadata(**json.loads(path.read_text()))

    def write_metadata(self, metadata: ModelMetadata) -> None:
        (self.path / MODEL_METADATA_FILE).write_text(json.dumps(asdict(metadata), indent=2, sort_keys=True))

    def reference(self) -> pd.DataFrame:
        """The drift reference: the validation split with what the served model answered (`REFERENCE_COLUMNS`)."""
        return pd.read_parquet(self.path / REFERENCE_SAMPLE_FILE)

    def onnx_file(self, backend: str) -> Path:
        """Where the directory keeps `backend`'s exported graph (it may not exist yet)."""
        return self.path / ONNX_FILES[backend]

    def write(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        metadata: ModelMetadata,
        reference: pd.DataFrame,
    ) -> ModelDirectory:
        """Weights, tokenizer, metadata and reference sample (the ONNX exports follow: `TextClassifier.save`)."""
        missing = [column for column in REFERENCE_COLUMNS if column not in reference.columns]
        if missing:
            raise ValueError(f"reference sample lacks column(s) {missing}")
        self.path.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(self.path, safe_serialization=True)
        tokenizer.save_pretrained(self.path)
        self.write_metadata(metadata)
        reference.to_parquet(self.path / REFERENCE_SAMPLE_FILE, index=False)
        return self
