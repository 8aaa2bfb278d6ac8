"""A cluster rollout's decisions, free of Kubernetes and KServe imports: where the champion's artifact is for
KServe's storage initializer, how the predictor scales, and how a rollout proceeds (create, canary, promote,
roll back). docs/cluster.md gives the KServe source behind each rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from textclf.names import (
    ARTIFACT_STORE_URI,
    INFERENCE_SERVICE_NAME,
    LOCAL_SERVING_URL,
    MONITOR_EVENTS_URL,
    SERVING_IMAGE,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# Schemes KServe's storage initializer downloads from (it mounts pvc:// instead of downloading).
STORAGE_SCHEMES = ("s3://", "gs://", "https://", "http://", "pvc://", "hdfs://", "webhdfs://", "hf://", "oci://")
MLFLOW_PROXIED_SCHEME = "mlflow-artifacts:"


class DeployError(RuntimeError):
    """The rollout could not be done; the message says what to fix."""


def storage_uri_for(artifact_source: str, artifact_store_uri: str = "") -> str:
    """The storage URI KServe reads the registered model directory from.

    A version registered through a proxying MLflow server (`mlflow-artifacts:/...`) lives under the server's
    `--artifacts-destination`; `artifact_store_uri` names that bucket path so the storage initializer can
    read it directly."""
    source = artifact_source.rstrip("/")
    if source.startswith(MLFLOW_PROXIED_SCHEME):
        if not artifact_store_uri:
            raise DeployError(
                f"the model's artifacts are proxied by the MLflow server ({source}); set artifact_store_uri to "
                "the server's --artifacts-destination (for example s3://mlflow) so KServe can download them"
            )
        relative = source.removeprefix(MLFLOW_PROXIED_SCHEME).lstrip("/")
        return f"{artifact_store_uri.rstrip('/')}/{relative}"
    if source.startswith(STORAGE_SCHEMES):
        return source
    raise DeployError(
        f"KServe cannot download {source!r}: register models on an object store "
        f"({', '.join(scheme.rstrip(':/') for scheme in STORAGE_SCHEMES)}), not a local path"
    )


def registered_storage_uri(client: MlflowClient, model_name: str, version: str, artifact_store_uri: str = "") -> str:
    """The storage URI of a registered version's model directory, for KServe's storage initializer."""
    download_uri = client.get_model_version_download_uri(model_name, version)
    tags = client.get_model_version(model_name, version).tags
    return storage_uri_for(model_directory_uri(download_uri, tags), artifact_store_uri)


def model_directory_uri(download_uri: str, version_tags: dict[str, str]) -> str:
    """Where a registered version keeps its textclf model directory: inside the MLflow model at the path its
    `model_directory` tag names (`textclf.serve.mlflow_model`), or, for versions registered as raw artifacts, at the
    version's root. KServe's storage initializer downloads that folder alone."""
    from textclf.registry.model_dir import MODEL_DIRECTORY_TAG

    inner = version_tags.get(MODEL_DIRECTORY_TAG, "").strip("/")
    root = download_uri.rstrip("/")
    return f"{root}/{inner}" if inner else root


class ServingPlan(BaseModel):
    """How the champion's InferenceService runs and rolls out: KServe's deployment mode and the autoscaler."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment_mode: Literal["Standard", "Knative"] = Field(
        "Standard",
        description="cluster runs: KServe's mode; Standard rolls pods over, Knative (needs Knative Serving) canaries",
    )
    canary_traffic_percent: int = Field(
        10, ge=1, le=100, description="Knative mode: traffic share of a new revision until it is Ready"
    )
    min_replicas: int = Field(1, ge=1, description="cluster runs: fewest predictor replicas")
    max_replicas: int = Field(3, ge=1, description="cluster runs: most predictor replicas")
    autoscaler: Literal["hpa", "keda", "none"] = Field(
        "hpa",
        description="Standard mode: 'hpa' (CPU, needs metrics-server), 'keda' (request rate from Prometheus), 'none'",
    )
    cpu_target_utilization: int = Field(
        70, ge=1, le=100, description="autoscaler hpa: average CPU use, in % of the request, to scale at"
    )
    keda_prometheus_url: str = Field("", description="autoscaler keda: the Prometheus server KEDA queries")
    keda_requests_per_second: float = Field(
        20.0, gt=0, description="autoscaler keda: inference requests per second one replica should take"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ServingPlan:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})")
        if self.autoscaler == "keda" and not self.keda_prometheus_url:
            raise ValueError("autoscaler 'keda' needs keda_prometheus_url: the Prometheus that scrapes the predictor")
        return self

    @property
    def canaries(self) -> bool:
        """Only KServe's Knative reconciler splits traffic by canaryTrafficPercent; in Standard mode a new spec
        is a rolling update of one Deployment."""
        return self.deployment_mode == "Knative"


def request_rate_query(namespace: str, name: str) -> str:
    """PromQL for the inference requests per second the predictor pods of `name` answer (their
    textclf_requests counter, route v2_infer or v1_predict), as Prometheus scrapes them."""
    return (
        f'sum(rate(textclf_requests_total{{namespace="{namespace}",pod=~"{name}-predictor-.*",'
        f'route=~"v2_infer|v1_predict"}}[1m]))'
    )


@dataclass(frozen=True)
class DeploymentRollout:
    """What `kubectl rollout status` reads off a Deployment, plus the storage URI its pod template serves."""

    generation: int
    observed_generation: int
    replicas: int
    updated_replicas: int
    available_replicas: int
    total_replicas: int
    storage_uri: str | None
    problem: str = ""


def rollout_pending(rollout: DeploymentRollout | None, storage_uri: str) -> str:
    """Why the predictor's Deployment has not yet rolled out `storage_uri` to every replica ("" once it has):
    KServe wrote the new pod template, the Deployment controller saw it, every replica runs it, no replica of
    the old template is left, and all are available (the checks of `kubectl rollout status`)."""
    if rollout is None:
        return "the predictor Deployment does not exist yet"
    if rollout.storage_uri != storage_uri:
        return f"the predictor Deployment still serves {rollout.storage_uri}"
    if rollout.observed_generation < rollout.generation:
        return "the Deployment controller has not seen the new pod template yet"
    if rollout.updated_replicas < rollout.replicas:
        return f"{rollout.updated_replicas} of {rollout.replicas} replicas run the new version"
    if rollout.total_replicas > rollout.updated_replicas:
        return f"{rollout.total_replicas - rollout.updated_replicas} of the previous version's replicas still run"
    if rollout.available_replicas < rollout.updated_replicas:
        return f"{rollout.available_replicas} of {rollout.updated_replicas} new replicas are available"
    return ""


@dataclass(frozen=True)
class RolloutStep:
    action: Literal["create", "canary", "promote", "rollback"]
    canary_traffic_percent: int | None
    reason: str


def first_rollout_step(existing_storage_uri: str | None, new_storage_uri: str, plan: ServingPlan) -> RolloutStep:
    """Create the InferenceService, or (Knative mode) send a canary share of traffic to the new revision while
    the previous one keeps the rest, or (Standard mode) roll the pods over with the previous ones serving until
    the new ones are available."""
    canary_percent = plan.canary_traffic_percent
    if existing_storage_uri is None:
        return RolloutStep("create", None, "no InferenceService yet: create it with all traffic")
    if existing_storage_uri == new_storage_uri:
        return RolloutStep("promote", None, "this artifact already serves: apply the spec with all traffic")
    if not plan.canaries:
        return RolloutStep(
            "promote",
            None,
            "Standard mode has no traffic split: a rolling update, the previous pods serve until the new ones are "
            "available",
        )
    if canary_percent == 100:
        return RolloutStep("promote", None, "canary of 100%: replace the serving revision at once")
    return RolloutStep(
        "canary", canary_percent, f"an older revision serves: send {canary_percent}% to the new one first"
    )


def after_wait(step: RolloutStep, became_ready: bool) -> RolloutStep | None:
    """What follows the first step: promote a healthy canary, roll back a failed one."""
    if step.action != "canary":
        return None
    if became_ready:
        return RolloutStep("promote", None, "the canary is Ready: move all traffic to it")
    return RolloutStep("rollback", None, "the canary did not become Ready: the previous spec is applied again")


class DeployConfig(ServingPlan):
    """Where and how the champion is served: a local `textclf serve`, or an InferenceService and its rollout."""

    url: str = Field(LOCAL_SERVING_URL, description="local runs: the textclf server to switch to a new champion")
    inference_service_name: str = Field(INFERENCE_SERVICE_NAME, description="cluster runs: InferenceService name")
    image: str = Field(SERVING_IMAGE, description="cluster runs: the predictor's image")
    artifact_store_uri: str = Field(
        ARTIFACT_STORE_URI, description="cluster runs: the MLflow server's --artifacts-destination, for KServe"
    )
    request_logger_url: str = Field(MONITOR_EVENTS_URL, description="cluster runs: where KServe logs requests")
    shadow_model: str = Field(
        "",
        description="cluster runs: the InferenceService also shadows this model (models:/NAME@challenger: each "
        "newly registered challenger, as min_shadow_texts needs); empty = none",
    )
    timeout_seconds: int = Field(600, ge=10, description="how long a rollout may take to become Ready")

    def plan(self) -> ServingPlan:
        """The rollout and autoscaling part, as the deploy stage takes it."""
        return ServingPlan(**{name: getattr(self, name) for name in ServingPlan.model_fields})
