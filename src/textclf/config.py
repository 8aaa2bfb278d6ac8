"""Typed configuration of a training run: defaults here, overridden by a YAML file, TEXTCLF_* variables
and the command line, in that order. The pipeline's parameters are these fields, one for one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field

from textclf.modeling import PACKAGED_MINILM
from textclf.names import (
    ARTIFACT_STORE_URI,
    CHAMPION_ALIAS,
    EXPERIMENT_NAME,
    INFERENCE_SERVICE_NAME,
    LOCAL_SERVING_URL,
    MONITOR_EVENTS_URL,
    MONITOR_PORT,
    REGISTERED_MODEL_NAME,
    SERVING_IMAGE,
    SERVING_NAMESPACE,
)

ENV_PREFIX = "TEXTCLF_"
SERVING_ENV_PREFIX = "TEXTCLF_SERVE_"
MONITOR_ENV_PREFIX = "TEXTCLF_MONITOR_"
Settings = TypeVar("Settings", bound=BaseModel)


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
    serving_url: str = Field(
        LOCAL_SERVING_URL, description="local runs: the textclf server to switch to a new champion"
    )
    serving_namespace: str = Field(SERVING_NAMESPACE, description="cluster runs: namespace of the InferenceService")
    inference_service_name: str = Field(INFERENCE_SERVICE_NAME, description="cluster runs: InferenceService name")
    serving_image: str = Field(SERVING_IMAGE, description="cluster runs: the predictor's image")
    artifact_store_uri: str = Field(
        ARTIFACT_STORE_URI, description="cluster runs: the MLflow server's --artifacts-destination, for KServe"
    )
    request_logger_url: str = Field(MONITOR_EVENTS_URL, description="cluster runs: where KServe logs requests")
    canary_traffic_percent: int = Field(10, ge=1, le=100, description="traffic share of a new revision at first")
    deploy_timeout_seconds: int = Field(600, ge=10, description="how long a rollout may take to become Ready")
    extra_train_data: str = Field(
        "", description="labelled rows (text, label) added to the training split only: feedback, new files"
    )
    drift_window_data: str = Field(
        "", description="labelled drift window (text, label): a challenger must also beat the champion on it"
    )
    drift_report: str = Field("", description="the drift report (HTML path or URL) that started this run")
    trigger: str = Field("", description="what started this run (the monitor's drift episode), as an MLflow tag")

    def resolved(self, workdir: Path) -> PipelineConfig:
        """Fill the locations left empty with the embedded defaults under `workdir`, as absolute URIs."""
        from textclf.tracking import default_tracking_uri

        return self.model_copy(
            update={
                "tracking_uri": self.tracking_uri or default_tracking_uri(workdir),
                "optuna_storage": self.optuna_storage or f"sqlite:///{workdir.resolve() / 'optuna.db'}",
            }
        )


class ServingConfig(BaseModel):
    """How `textclf serve` (and the serving image) runs the predictor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        f"models:/{REGISTERED_MODEL_NAME}@{CHAMPION_ALIAS}",
        description="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model, or a model directory",
    )
    model_name: str = Field(REGISTERED_MODEL_NAME, description="name in the inference URLs (/v2/models/NAME)")
    model_version: str = Field(
        "", description="version to report for a model directory (the registry version it holds); empty = digest"
    )
    tracking_uri: str = Field("", description="MLflow URI for models:/ and runs:/; empty = ./mlflow.db")
    host: str = Field("127.0.0.1", description="interface the HTTP server listens on")
    http_port: int = Field(8080, ge=1, le=65535, description="HTTP port (v1, v2 REST, /predict, /metrics)")
    grpc_port: int = Field(8081, ge=0, le=65535, description="v2 gRPC port; 0 turns gRPC off")
    max_batch_size: int = Field(64, ge=1, description="most texts one forward pass takes")
    max_wait_ms: float = Field(
        0.0, ge=0, le=1000, description="how long a batch waits for more requests once the model is free"
    )
    torch_threads: int = Field(0, ge=0, description="intra-op threads of the forward pass; 0 = the CPU quota")
    max_texts_per_request: int = Field(256, ge=1, description="most texts one request may carry")
    max_text_chars: int = Field(100_000, ge=1, description="longest text accepted, in characters")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="largest request body accepted")
    request_logger_url: str = Field(
        "", description="send each request and response as CloudEvents to this URL (the monitoring service)"
    )
    access_log: bool = Field(True, description="one structured log line per HTTP request")


class MonitorConfig(BaseModel):
    """How `textclf monitor` (and the monitoring image) runs: the store, the checks, the retraining trigger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = Field(
        "", description="SQLAlchemy URL of the store (postgresql://... in a cluster); empty = sqlite in workdir"
    )
    workdir: str = Field("monitor", description="where reports, retraining data and run logs are kept")
    host: str = Field("127.0.0.1", description="interface the service listens on")
    port: int = Field(MONITOR_PORT, ge=1, le=65535, description="HTTP port")
    public_url: str = Field(
        "", description="how pipeline steps reach this service (cluster runs); empty = hand them local paths"
    )
    registered_model_name: str = Field(REGISTERED_MODEL_NAME, description="MLflow model whose versions are served")
    tracking_uri: str = Field("", description="MLflow URI; empty = MLFLOW_TRACKING_URI or the training workdir's")
    reference_model: str = Field(
        "", description="model (and reference) for served versions that are not registry versions"
    )
    window_size: int = Field(1000, ge=1, description="most recent predictions a check compares")
    check_interval_seconds: float = Field(300, ge=0, description="seconds between scheduled checks; 0 = none")
    descriptor_method: str = Field("ks", description="Evidently test for text descriptors (ks, wasserstein, ...)")
    descriptor_threshold: float = Field(0.01, gt=0, description="drift below this p-value (or above a distance)")
    label_method: str = Field("chisquare", description="Evidently test for the predicted-label distribution")
    label_threshold: float = Field(0.01, gt=0, description="drift below this p-value (or above a distance)")
    score_method: str = Field("ks", description="Evidently test for the confidence distribution")
    score_threshold: float = Field(0.01, gt=0, description="drift below this p-value (or above a distance)")
    embedding_threshold: float = Field(0.6, gt=0.5, le=1, description="embedding drift (domain classifier AUC)")
    embedding_sample: int = Field(500, ge=20, description="texts per side embedded for the embedding check")
    embedding_max_tokens: int = Field(
        64, ge=8, description="tokens of each text's beginning that are embedded (half the time of 128 on long texts)"
    )
    min_window_size: int = Field(200, ge=1, description="predictions a window needs before it is judged")
    min_drifted_checks: int = Field(2, ge=1, description="drifted checks that mean retrain")
    cooldown_seconds: float = Field(6 * 3600, ge=0, description="no new retraining run this soon after one")
    max_accuracy_drop: float = Field(0.05, ge=0, le=1, description="live accuracy drop (with feedback) = retrain")
    min_labelled: int = Field(50, ge=1, description="feedback labels needed before live accuracy counts")
    require_feedback: bool = Field(
        True, description="retrain only once the window has min_labelled feedback labels to learn from and judge by"
    )
    retrain: bool = Field(True, description="start a retraining run when a check decides so")
    kfp_host: str = Field("", description="Kubeflow Pipelines endpoint for retraining; empty = kfp.local")
    training_config: str = Field("", description="YAML of the training run to repeat (data, model, ...)")
    training_workdir: str = Field(".", description="local retraining: the workdir of the original `textclf run`")
    new_data_dir: str = Field("", description="folder of new labelled files (text, label) to add when retraining")
    holdout_fraction: float = Field(
        0.3, gt=0, lt=1, description="share of feedback held out as the drift window the gate judges on"
    )
    report_retention: int = Field(
        200, ge=1, description="reports kept (about 9 MB each, Evidently's scripts inline); a run's trigger is kept"
    )
    max_event_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="largest event or feedback body accepted")


def load_settings(
    model: type[Settings],
    env_prefix: str,
    yaml_path: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Defaults, then the YAML file, then <PREFIX><FIELD> variables, then explicit overrides."""
    values: dict[str, Any] = {}
    if yaml_path is not None:
        loaded = yaml.safe_load(yaml_path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{yaml_path} must hold a mapping of configuration fields")
        values.update(loaded)
    for name in model.model_fields:
        env_value = os.environ.get(f"{env_prefix}{name.upper()}")
        if env_value is not None:
            values[name] = env_value
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return model.model_validate(values)


def load_config(yaml_path: Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """The training run's configuration: defaults < YAML < TEXTCLF_<FIELD> < overrides."""
    return load_settings(PipelineConfig, ENV_PREFIX, yaml_path, overrides)


def load_serving_config(yaml_path: Path | None = None, overrides: dict[str, Any] | None = None) -> ServingConfig:
    """The server's configuration: defaults < YAML < TEXTCLF_SERVE_<FIELD> < overrides."""
    return load_settings(ServingConfig, SERVING_ENV_PREFIX, yaml_path, overrides)


def load_monitor_config(yaml_path: Path | None = None, overrides: dict[str, Any] | None = None) -> MonitorConfig:
    """The monitor's configuration: defaults < YAML < TEXTCLF_MONITOR_<FIELD> < overrides."""
    return load_settings(MonitorConfig, MONITOR_ENV_PREFIX, yaml_path, overrides)
