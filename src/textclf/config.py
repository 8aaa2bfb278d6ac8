"""Typed configuration of a training run: defaults here, overridden by a YAML file, TEXTCLF_* variables
and the command line, in that order. The pipeline's parameters are these fields, one for one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from textclf.modeling import PACKAGED_MINILM
from textclf.names import EXPERIMENT_NAME, REGISTERED_MODEL_NAME

ENV_PREFIX = "TEXTCLF_"


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data: str = Field("demo", description="'demo[:domain]', 'hf:<dataset id>', or a CSV/JSONL/Parquet path or URL")
    text_column: str = Field("text", description="column holding the text")
    label_column: str = Field("label", description="column holding the class label")
    hf_split: str = Field("train", description="split to load from a Hugging Face dataset")
    hf_config: str = Field("", description="configuration name of a Hugging Face dataset, if it has several")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="share of rows held out for validation")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="share of rows held out for the test split")
    seed: int = Field(42, description="seed for splitting, initialisation, data order and tuning")
    strip_html: bool = Field(True, description="remove HTML tags and unescape entities")
    strip_urls: bool = Field(True, description="remove URLs")
    normalize_unicode: bool = Field(True, description="NFKC-normalize unicode")
    normalize_whitespace: bool = Field(True, description="collapse runs of whitespace")
    lowercase: bool = Field(False, description="lowercase texts (uncased tokenizers do this anyway)")
    base_model: str = Field(PACKAGED_MINILM, description="Hub id or local path of the encoder to fine-tune")
    max_length: int = Field(128, ge=8, le=4096, description="tokens per text; longer texts are truncated")
    finetune: Literal["lora", "full"] = Field("lora", description="LoRA adapters (merged after) or full")
    learning_rate: float = Field(0.0, ge=0, description="peak learning rate; 0 = 5e-4 for LoRA, 5e-5 for full")
    batch_size: int = Field(32, ge=1, description="training batch size")
    epochs: int = Field(3, ge=1, description="maximum epochs (early stopping may end sooner)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="share of steps with linear warm-up")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling alpha")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="LoRA dropout")
    freeze_word_embeddings: bool = Field(True, description="keep the word-embedding matrix frozen (full mode)")
    early_stopping_patience: int = Field(1, ge=1, description="epochs without improvement before stopping")
    trials: int = Field(2, ge=0, description="Optuna trials; 0 skips tuning")
    tune_max_train_rows: int = Field(2000, ge=0, description="rows each trial trains on (0 = all)")
    optuna_storage: str = Field("", description="Optuna RDB URL; empty = sqlite file in the working directory")
    tracking_uri: str = Field("", description="MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db")
    experiment_name: str = Field(EXPERIMENT_NAME, description="MLflow experiment")
    registered_model_name: str = Field(REGISTERED_MODEL_NAME, description="MLflow registered model")
    min_accuracy_gain: float = Field(0.0, ge=0, description="accuracy a challenger must gain to be promoted")
    max_class_f1_drop: float = Field(0.05, ge=0, description="largest per-class F1 drop a promotion allows")

    def resolved(self, workdir: Path) -> PipelineConfig:
        """Fill the locations left empty with the embedded defaults under `workdir`, as absolute URIs."""
        from textclf.tracking import default_tracking_uri

        return self.model_copy(
            update={
                "tracking_uri": self.tracking_uri or default_tracking_uri(workdir),
                "optuna_storage": self.optuna_storage or f"sqlite:///{workdir.resolve() / 'optuna.db'}",
            }
        )


def load_config(yaml_path: Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Defaults, then the YAML file, then TEXTCLF_<FIELD> variables, then explicit overrides."""
    values: dict[str, Any] = {}
    if yaml_path is not None:
        loaded = yaml.safe_load(yaml_path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{yaml_path} must hold a mapping of configuration fields")
        values.update(loaded)
    for name in PipelineConfig.model_fields:
        env_value = os.environ.get(f"{ENV_PREFIX}{name.upper()}")
        if env_value is not None:
            values[name] = env_value
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return PipelineConfig.model_validate(values)
