"""Typed configuration of the training run, the server and the monitor: defaults, overridden by a YAML file,
TEXTCLF_* variables and the command line, in that order (`textclf.settings`: pydantic-settings merges them). The
pipeline's parameters are `PipelineConfig`'s fields, one for one: a few run-wide values and typed groups, each
group one parameter.

Every default and every description is stated once, in the stage that owns the setting (`DatasetConfig`,
`CleaningConfig`, `EncoderConfig`, `TrainingRecipe`, `TuningConfig`, `DistributedConfig`, `QualityChecks`,
`PromotionPolicy`, `DeployConfig`, `DriftPolicy`, `DriftReportSettings`); this module nests them."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from textclf.data.cleaning import CleaningConfig
from textclf.data.sources import DatasetConfig, DataSource
from textclf.deploy.rollout import DeployConfig
from textclf.evaluate.evaluation import QualityChecks
from textclf.monitor.bounds import StoreBounds
from textclf.monitor.decision import DriftPolicy
from textclf.monitor.labelling import QueueSettings
from textclf.monitor.report import DriftReportSettings
from textclf.names import (
    CHAMPION_ALIAS,
    EXPERIMENT_NAME,
    INFERENCE_SERVICE_NAME,
    LOCAL_HOST,
    LOCAL_MONITOR_URL,
    LOCAL_SERVING_URL,
    MONITOR_PORT,
    REGISTERED_MODEL_NAME,
    SERVING_NAMESPACE,
    UI_PORT,
)
from textclf.registry.gate import PromotionPolicy
from textclf.serve.backends import AUTO_BACKEND, BackendChoice
from textclf.serve.explain import ExplanationLimits
from textclf.serve.inputs import InputLimits
from textclf.serve.slot import SlotSettings
from textclf.settings import load_settings, translate_flat_names
from textclf.train.distributed import DistributedConfig
from textclf.train.modeling import EncoderConfig
from textclf.train.trainer import TrainingParams, TrainingRecipe
from textclf.train.tuning import TuningConfig

ENV_PREFIX = "TEXTCLF_"
SERVING_ENV_PREFIX = "TEXTCLF_SERVE_"
MONITOR_ENV_PREFIX = "TEXTCLF_MONITOR_"
UI_ENV_PREFIX = "TEXTCLF_UI_"
# The predictor's body limit, which the UI shares: the UI forwards what it accepts to the predictor.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


class PipelineConfig(BaseModel):
    """The training pipeline's parameters: the run-wide values, then one group per concern."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The flat names of release 0.x, accepted with a deprecation message: old name -> its place now.
    FLAT_NAMES: ClassVar[dict[str, str]]

    data: str = Field(
        DataSource.spec, description="'demo[:domain]', 'hf:<dataset id>', or a CSV/JSONL/Parquet path or URL"
    )
    seed: int = Field(
        TrainingParams.model_fields["seed"].default, description=TrainingParams.model_fields["seed"].description
    )
    dataset: DatasetConfig = Field(default_factory=DatasetConfig, description="how the data's rows are read and split")
    cleaning: CleaningConfig = Field(
        default_factory=CleaningConfig,
        description="which cleaning steps run on every text (saved with the model: serving cleans alike)",
    )
    encoder: EncoderConfig = Field(
        default_factory=EncoderConfig, description="the encoder to fine-tune and how much of a text it reads"
    )
    training: TrainingRecipe = Field(
        default_factory=TrainingRecipe, description="how the encoder is fine-tuned: the recipe tuning starts from"
    )
    tuning: TuningConfig = Field(
        default_factory=TuningConfig, description="the Optuna study that tunes the training recipe"
    )
    distributed: DistributedConfig = Field(default_factory=DistributedConfig, description="data-parallel training")
    checks: QualityChecks = Field(
        default_factory=QualityChecks, description="what the model is checked by beyond its test-split metrics"
    )
    promotion: PromotionPolicy = Field(
        default_factory=PromotionPolicy, description="when a challenger may replace the champion"
    )
    serving: DeployConfig = Field(
        default_factory=DeployConfig,
        description="where and how the champion is served: a local `textclf serve`, or an InferenceService",
    )
    tracking_uri: str = Field("", description="MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db")
    experiment_name: str = Field(EXPERIMENT_NAME, description="MLflow experiment")
    registered_model_name: str = Field(REGISTERED_MODEL_NAME, description="MLflow registered model")
    namespace: str = Field(
        SERVING_NAMESPACE, description="cluster runs: namespace of the InferenceService and of TrainJobs"
    )
    extra_train_data: str = Field(
        "", description="labelled rows (text, label) added to the training split only: feedback, new files"
    )
    drift_window_data: str = Field(
        "", description="labelled drift window (text, label): a challenger must also beat the champion on it"
    )
    drift_report: str = Field("", description="the drift report (HTML path or URL) that started this run")
    trigger: str = Field("", description="what started this run (the monitor's drift episode), as an MLflow tag")

    @model_validator(mode="before")
    @classmethod
    def _accept_flat_names(cls, values: Any) -> Any:
        return translate_flat_names(values, cls.FLAT_NAMES, "configuration") if isinstance(values, Mapping) else values

    @classmethod
    def groups(cls) -> dict[str, type[BaseModel]]:
        """Each parameter group by its name: the pipeline's (and a component's) `dict` parameter of that name."""
        return {name: field.annotation for name, field in cls.model_fields.items() if _is_model(field.annotation)}

    def resolved(self, workdir: Path) -> PipelineConfig:
        """Fill the locations left empty with the embedded defaults under `workdir`, as absolute URIs."""
        from textclf.registry.tracking import default_tracking_uri

        storage = self.tuning.optuna_storage or f"sqlite:///{workdir.resolve() / 'optuna.db'}"
        return self.model_copy(
            update={
                "tracking_uri": self.tracking_uri or default_tracking_uri(workdir),
                "tuning": self.tuning.model_copy(update={"optuna_storage": storage}),
            }
        )

    def parameters(self) -> dict[str, Any]:
        """The pipeline's arguments: primitives and, for each group, its fields as a dict."""
        return self.model_dump()


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


# Field names in their group unless the group's name already says it (tune_parallelism is tuning.parallelism).
_RENAMED_FLAT_NAMES = {
    "tune_max_train_rows": "tuning.max_train_rows",
    "tune_parallelism": "tuning.parallelism",
    "serving_url": "serving.url",
    "serving_image": "serving.image",
    "deploy_timeout_seconds": "serving.timeout_seconds",
    "serving_namespace": "namespace",
}
PipelineConfig.FLAT_NAMES = {
    **{
        name: f"{group}.{name}"
        for group, model in PipelineConfig.groups().items()
        for name in model.model_fields
        if f"{group}.{name}" not in _RENAMED_FLAT_NAMES.values()
    },
    **_RENAMED_FLAT_NAMES,
}


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
    host: str = Field(LOCAL_HOST, description="interface the HTTP server listens on")
    http_port: int = Field(8080, ge=1, le=65535, description="HTTP port (v1, v2 REST, /predict, /metrics)")
    grpc_port: int = Field(8081, ge=0, le=65535, description="v2 gRPC port; 0 turns gRPC off")
    max_batch_size: int = Field(64, ge=1, description="most texts one forward pass takes")
    max_wait_ms: float = Field(
        0.0, ge=0, le=1000, description="how long a batch waits for more requests once the model is free"
    )
    target_batch_ms: float = Field(
        100.0,
        gt=0,
        le=60_000,
        description="compute one batch is sized to (measured as the server runs): a request's texts beyond it wait "
        "their turn behind other requests' (fair sharing), so no request holds the model for long",
    )
    torch_threads: int = Field(0, ge=0, description="intra-op threads of the forward pass; 0 = the CPU quota")
    backend: BackendChoice = Field(
        AUTO_BACKEND,
        description="inference backend: PyTorch, ONNX Runtime fp32 or int8, or auto (the fastest on this machine "
        "among those whose validation accuracy, recorded in training, is within 0.3 points of PyTorch's)",
    )
    max_texts_per_request: int = Field(256, ge=1, description="most texts one request may carry")
    max_text_chars: int = Field(100_000, ge=1, description="longest text accepted, in characters")
    max_body_bytes: int = Field(MAX_REQUEST_BYTES, ge=1024, description="largest request body accepted")
    max_explain_texts: int = Field(8, ge=1, description="most texts one explanation request may carry")
    max_explain_chars: int = Field(
        5_000, ge=1, description="longest text explained, in characters (explaining costs a forward pass per word)"
    )
    max_explain_words: int = Field(300, ge=1, description="most words of one text explained")
    max_explain_request_words: int = Field(
        1_200,
        ge=1,
        description="most words one explanation request may explain, all its texts together (each word is a forward "
        "pass of its text)",
    )
    request_logger_url: str = Field(
        "", description="send each request and response as CloudEvents to this URL (the monitoring service)"
    )
    access_log: bool = Field(True, description="one structured log line per HTTP request")
    admin_token: SecretStr = Field(
        SecretStr(""),
        description="bearer token the model-repository routes (load, unload) require; empty = those routes are off",
    )
    request_logger_token: SecretStr = Field(
        SecretStr(""), description="bearer token sent with each request-log event (the monitor's write_token)"
    )
    request_logger_buffer_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="request-log events held for delivery while the monitor is away; beyond it new ones are dropped",
    )
    request_logger_flush_seconds: float = Field(
        10.0,
        ge=0,
        le=300,
        description="on a graceful stop (SIGTERM), how long buffered request-log events may take to reach the "
        "monitor; it follows KServe's wait for requests in flight, and the pod's termination grace period (30 s by "
        "default) must cover both",
    )
    request_logger_spool_dir: str = Field(
        "",
        description="where request-log events still unsent after that flush are written, to be sent first at the "
        "next start (an emptyDir on a cluster); empty = they are counted (shutdown) and logged as lost",
    )
    shadow_model: str = Field(
        "",
        description="a second model (models:/NAME@challenger, a version, run or directory) that sees a share of the "
        "requests off the response path; both predictions go to the request logger; empty = none",
    )
    shadow_events_url: str = Field(
        "",
        description="where shadow events go when request_logger_url is empty (a cluster, where KServe's agent logs "
        "requests and responses); empty = request_logger_url",
    )
    shadow_percent: float = Field(
        100.0, ge=0, le=100, description="share of requests (by request id) the shadow model also classifies"
    )
    shadow_queue_texts: int = Field(
        512,
        ge=1,
        description="texts waiting for the shadow model (it runs at the lowest CPU priority, on the time the "
        "champion leaves); beyond it requests are not shadowed, and counted",
    )
    shadow_refresh_seconds: float = Field(
        60.0,
        ge=0,
        description="how often a shadow alias (models:/NAME@challenger) is read again, and a new version loaded; "
        "0 = only when the server (re)loads",
    )

    def slot_settings(self, tracking_uri: str) -> SlotSettings:
        """What the model's slot loads and how it batches; `tracking_uri` when none is configured."""
        return SlotSettings(
            reference=self.model,
            tracking_uri=self.tracking_uri or tracking_uri,
            reported_version=self.model_version,
            backend=self.backend,
            torch_threads=self.torch_threads,
            max_batch_size=self.max_batch_size,
            max_wait_ms=self.max_wait_ms,
            target_batch_ms=self.target_batch_ms,
            explanation_limits=ExplanationLimits(
                max_texts=self.max_explain_texts,
                max_chars=self.max_explain_chars,
                max_words=self.max_explain_words,
                max_request_words=self.max_explain_request_words,
            ),
        )

    def input_limits(self) -> InputLimits:
        return InputLimits(max_texts=self.max_texts_per_request, max_text_chars=self.max_text_chars)


class MonitorConfig(BaseModel):
    """How `textclf monitor` (and the monitoring image) runs: the store, the checks, the retraining trigger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = Field(
        "", description="SQLAlchemy URL of the store (postgresql://... in a cluster); empty = sqlite in workdir"
    )
    workdir: str = Field("monitor", description="where reports, retraining data and run logs are kept")
    host: str = Field(LOCAL_HOST, description="interface the service listens on")
    port: int = Field(MONITOR_PORT, ge=1, le=65535, description="HTTP port")
    events_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="a second port serving only POST /events, without a token, for KServe's agent (which cannot "
        "send one); admit only the predictor pods to it. 0 = none",
    )
    trusted_proxies: str = Field(
        "",
        description="comma-separated addresses of proxies whose X-Forwarded-For names the client (the address "
        "recorded with feedback); empty = the header is ignored and the connection's address is recorded",
    )
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
    report: DriftReportSettings = Field(
        default_factory=DriftReportSettings, description="which test each check uses and its threshold"
    )
    policy: DriftPolicy = Field(default_factory=DriftPolicy, description="when a check's scores mean retraining")
    queue: QueueSettings = Field(
        default_factory=QueueSettings, description="how the labelling queue values a text for labelling"
    )
    retrain: bool = Field(True, description="start a retraining run when a check decides so")
    kfp_host: str = Field("", description="Kubeflow Pipelines endpoint for retraining; empty = kfp.local")
    training_config: str = Field("", description="YAML of the training run to repeat (data, model, ...)")
    training_workdir: str = Field(".", description="local retraining: the workdir of the original `textclf run`")
    new_data_dir: str = Field("", description="folder of new labelled files (text, label) to add when retraining")
    holdout_fraction: float = Field(
        0.3, gt=0, lt=1, description="share of feedback held out as the drift window the gate judges on"
    )
    report_retention_bytes: int = Field(
        512 * 1024 * 1024,
        ge=0,
        description="disk the saved reports may take (about 9 MB each: Evidently inlines its scripts); oldest go first",
    )
    report_retention_days: float = Field(30, gt=0, description="reports older than this are deleted")
    triggering_report_retention_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="disk kept for the reports that started retraining runs, on top"
    )
    record_retention_days: float = Field(
        30,
        gt=0,
        description="events, predictions, feedback and checks received longer ago than this are deleted at each check",
    )
    max_event_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="largest event or feedback body accepted")
    max_stored_event_bytes: int = Field(
        StoreBounds.event_bytes,
        ge=1024,
        description="payload bytes of request-log events kept; past it the first received go (their predictions stay)",
    )
    max_stored_prediction_text_bytes: int = Field(
        StoreBounds.prediction_text_bytes, ge=1024, description="characters of the stored predictions' texts kept"
    )
    max_stored_predictions: int = Field(StoreBounds.predictions, ge=1, description="prediction records kept")
    max_stored_shadow_records: int = Field(StoreBounds.shadow_records, ge=1, description="shadow records kept")
    max_stored_feedback: int = Field(StoreBounds.feedback, ge=1, description="feedback labels kept")
    max_stored_checks: int = Field(StoreBounds.checks, ge=1, description="drift checks kept")
    write_token: SecretStr = Field(
        SecretStr(""), description="bearer token for /events, /checks (and /feedback); empty = writes are open"
    )
    feedback_token: SecretStr = Field(
        SecretStr(""), description="a token for /feedback alone, so labelling tools never hold write_token"
    )
    model_names: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [INFERENCE_SERVICE_NAME],
        description="served model names whose events are accepted; events naming any other get a 4xx",
    )

    def store_bounds(self) -> StoreBounds:
        return StoreBounds(
            event_bytes=self.max_stored_event_bytes,
            prediction_text_bytes=self.max_stored_prediction_text_bytes,
            predictions=self.max_stored_predictions,
            shadow_records=self.max_stored_shadow_records,
            feedback=self.max_stored_feedback,
            checks=self.max_stored_checks,
        )

    @field_validator("model_names", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """TEXTCLF_MONITOR_MODEL_NAMES=a,b and --set model_names=a,b as lists."""
        return [name.strip() for name in value.split(",") if name.strip()] if isinstance(value, str) else value


class UiConfig(BaseModel):
    """How `textclf ui` runs: the browser UI and the two public APIs it speaks to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(LOCAL_HOST, description="interface the UI listens on")
    port: int = Field(UI_PORT, ge=1, le=65535, description="HTTP port")
    serving_url: str = Field(LOCAL_SERVING_URL, description="the predictor (v2 infer and explain)")
    model_name: str = Field(INFERENCE_SERVICE_NAME, description="the served model's name (/v2/models/NAME)")
    monitor_url: str = Field(LOCAL_MONITOR_URL, description="the monitoring service (checks, quality, feedback)")
    feedback_token: SecretStr = Field(
        SecretStr(""),
        description="the monitor's feedback_token (or write_token), sent with corrections; never sent to the browser",
    )
    timeout_seconds: float = Field(30, gt=0, description="how long the UI waits for the predictor or the monitor")
    max_body_bytes: int = Field(
        MAX_REQUEST_BYTES, ge=1024, description="largest body a page call may send (the predictor's default limit)"
    )
    allowed_hosts: str = Field(
        "",
        description="comma-separated host names the page is served under (the Host header, port left out), e.g. an "
        "Ingress's; localhost, 127.0.0.1 and ::1 always are, and `host` when it names one address",
    )
    credentials: SecretStr = Field(
        SecretStr(""),
        description="comma-separated user:password pairs the page asks for (HTTP Basic); required when `host` is not "
        "a loopback address; the feedback a user gives is recorded under their name",
    )

    @model_validator(mode="after")
    def _credentials_beyond_localhost(self) -> UiConfig:
        if not self.credentials.get_secret_value() and not is_loopback(self.host):
            raise ValueError(
                f"the UI listens on {self.host}, beyond this machine, and would let anyone who reaches it classify "
                "and label: set credentials (TEXTCLF_UI_CREDENTIALS=user:password), or listen on 127.0.0.1"
            )
        for pair in self.credentials.get_secret_value().split(","):
            if pair and (":" not in pair or not pair.split(":", 1)[0] or not pair.split(":", 1)[1]):
                raise ValueError("credentials must be user:password pairs, comma-separated")
        return self


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps a server on this machine (a name other than localhost is not assumed to)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_config(yaml_path: Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """The training run's configuration: defaults < YAML < TEXTCLF_<FIELD> < overrides."""
    return load_settings(PipelineConfig, ENV_PREFIX, yaml_path, overrides)


def load_serving_config(yaml_path: Path | None = None, overrides: dict[str, Any] | None = None) -> ServingConfig:
    """The server's configuration: defaults < YAML < TEXTCLF_SERVE_<FIELD> < overrides."""
    return load_settings(ServingConfig, SERVING_ENV_PREFIX, yaml_path, overrides)


def load_monitor_config(yaml_path: Path | None = None, overrides: dict[str, Any] | None = None) -> MonitorConfig:
    """The monitor's configuration: defaults < YAML < TEXTCLF_MONITOR_<FIELD> < overrides."""
    return load_settings(MonitorConfig, MONITOR_ENV_PREFIX, yaml_path, overrides)


def load_ui_config(yaml_path: Path | None = None, overrides: dict[str, Any] | None = None) -> UiConfig:
    """The UI's configuration: defaults < YAML < TEXTCLF_UI_<FIELD> < overrides."""
    return load_settings(UiConfig, UI_ENV_PREFIX, yaml_path, overrides)
