"""The champion's InferenceService, built from the kserve SDK's model classes, and its rollout on a cluster."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from kubernetes.client import (
    V1Capabilities,
    V1Container,
    V1ContainerPort,
    V1EmptyDirVolumeSource,
    V1EnvVar,
    V1EnvVarSource,
    V1HTTPGetAction,
    V1ObjectMeta,
    V1PodSecurityContext,
    V1Probe,
    V1ResourceRequirements,
    V1SeccompProfile,
    V1SecretKeySelector,
    V1SecurityContext,
    V1Volume,
    V1VolumeMount,
)

from textclf.deploy.manifests import kubernetes_schema_errors, policy_violations
from textclf.deploy.rollout import (
    DeployError,
    DeploymentRollout,
    RolloutStep,
    ServingPlan,
    after_wait,
    first_rollout_step,
    request_rate_query,
    rollout_pending,
)
from textclf.names import AUTH_SECRET, PREDICTOR_SERVICE_ACCOUNT, SERVING_IMAGE, SERVING_RESOURCES, StepResources

logger = logging.getLogger(__name__)

HTTP_PORT = 8080
MODEL_MOUNT = "/mnt/models"
CONTAINER_NAME = "kserve-container"
# KServe's annotations (pkg/constants/constants.go): the mode ("Standard" since 0.17, formerly RawDeployment;
# "Knative", formerly Serverless) and the autoscaler of Standard mode.
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
AUTOSCALER_CLASS_ANNOTATION = "serving.kserve.io/autoscalerClass"
# KServe's own scraping switch points prometheus.io/port at 9091, Knative's queue-proxy, which Standard mode's
# pods lack (pkg/webhook/admission/pod/metrics_aggregate_injector.go): switch it off so the webhook keeps ours,
# which name the model server's /metrics (docs/cluster.md).
PROMETHEUS_POD_ANNOTATIONS = {
    "serving.kserve.io/enable-prometheus-scraping": "false",
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(HTTP_PORT),
    "prometheus.io/path": "/metrics",
}
MODEL_VERSION_ANNOTATION = "textclf.io/model-version"
NON_ROOT_USER = 1000
KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
POLL_SECONDS = 5.0


@dataclass(frozen=True)
class InferenceServiceSettings:
    name: str
    namespace: str
    storage_uri: str
    model_version: str
    image: str = SERVING_IMAGE
    resources: StepResources = SERVING_RESOURCES
    request_logger_url: str = ""
    plan: ServingPlan = field(default_factory=ServingPlan)
    shadow_model: str = ""
    """A second model the predictor shadows (`textclf serve --shadow-model`), read through `tracking_uri`; its
    events go where KServe's logger sends requests and responses."""
    tracking_uri: str = ""
    # The traffic share this spec gives the new revision (Knative mode's canary step); None = all of it.
    canary_traffic_percent: int | None = None
    # Holds the object store's credentials Secret, which KServe's storage initializer reads.
    service_account_name: str = PREDICTOR_SERVICE_ACCOUNT


def _auto_scaling(settings: InferenceServiceSettings) -> Any:
    """The predictor's `autoScaling` for Standard mode: CPU utilisation through an HPA, or the request rate
    through a KEDA ScaledObject querying Prometheus; None without an autoscaler (and in Knative mode, whose own
    autoscaler scales between min and max replicas)."""
    from kserve import (
        V1beta1AutoScalingSpec,
        V1beta1ExternalMetrics,
        V1beta1ExternalMetricSource,
        V1beta1MetricsSpec,
        V1beta1MetricTarget,
        V1beta1ResourceMetricSource,
    )

    plan = settings.plan
    if plan.deployment_mode != "Standard" or plan.autoscaler == "none":
        return None
    if plan.autoscaler == "hpa":
        metric = V1beta1MetricsSpec(
            type="Resource",
            resource=V1beta1ResourceMetricSource(
                name="cpu",
                target=V1beta1MetricTarget(type="Utilization", average_utilization=plan.cpu_target_utilization),
            ),
        )
    else:
        metric = V1beta1MetricsSpec(
            type="External",
            external=V1beta1ExternalMetricSource(
                metric=V1beta1ExternalMetrics(
                    backend="prometheus",
                    server_address=plan.keda_prometheus_url,
                    query=request_rate_query(settings.namespace, settings.name),
                ),
                target=V1beta1MetricTarget(type="Value", value=_quantity(plan.keda_requests_per_second)),
            ),
        )
    return V1beta1AutoScalingSpec(metrics=[metric])


REQUEST_LOG_SPOOL_DIR = "/tmp/request-log-spool"


def _shadow_env(settings: InferenceServiceSettings) -> list[Any]:
    """The shadow model, the registry it is read from, and where its events go (the monitor's events port, as
    KServe's logger): no token needed, and the monitor's NetworkPolicy admits the predictor pods there."""
    from kubernetes.client import V1EnvVar

    if not settings.shadow_model:
        return []
    return [
        V1EnvVar(name="TEXTCLF_SERVE_SHADOW_MODEL", value=settings.shadow_model),
        V1EnvVar(name="TEXTCLF_SERVE_TRACKING_URI", value=settings.tracking_uri),
        V1EnvVar(name="TEXTCLF_SERVE_SHADOW_EVENTS_URL", value=settings.request_logger_url),
        # Shadow events still unsent when the pod stops wait here for the container's next start: the /tmp
        # emptyDir outlives container restarts (not the pod).
        V1EnvVar(name="TEXTCLF_SERVE_REQUEST_LOGGER_SPOOL_DIR", value=REQUEST_LOG_SPOOL_DIR),
    ]


def _quantity(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def build_inference_service(settings: InferenceServiceSettings) -> Any:
    """A `V1beta1InferenceService` whose predictor is the textclf serving image; KServe's storage
    initializer places the model directory from `STORAGE_URI` at /mnt/models before the server starts."""
    from kserve import (
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1LoggerSpec,
        V1beta1PredictorSpec,
        constants,
    )

    plan = settings.plan
    container = V1Container(
        name=CONTAINER_NAME,
        image=settings.image,
        command=["textclf"],
        args=[
            "serve",
            "--model",
            MODEL_MOUNT,
            "--model-name",
            settings.name,
            "--host",
            "0.0.0.0",
            "--port",
            str(HTTP_PORT),
        ],
        env=[
            V1EnvVar(name="STORAGE_URI", value=settings.storage_uri),
            V1EnvVar(name="TEXTCLF_SERVE_ACCESS_LOG", value="true"),
            # The monitor looks up the served version's reference sample in the registry by this number.
            V1EnvVar(name="TEXTCLF_SERVE_MODEL_VERSION", value=settings.model_version),
            # The model-repository routes (load, unload) take this token; the chart's Secret holds it.
            V1EnvVar(
                name="TEXTCLF_SERVE_ADMIN_TOKEN",
                value_from=V1EnvVarSource(secret_key_ref=V1SecretKeySelector(name=AUTH_SECRET, key="admin-token")),
            ),
            # The root filesystem is read-only: caches and scratch files go to the /tmp volume.
            V1EnvVar(name="HOME", value="/tmp"),
            *_shadow_env(settings),
        ],
        ports=[V1ContainerPort(container_port=HTTP_PORT, name="http1", protocol="TCP")],
        resources=V1ResourceRequirements(
            requests={"cpu": settings.resources.cpu_request, "memory": settings.resources.memory_request},
            limits={"cpu": settings.resources.cpu_limit, "memory": settings.resources.memory_limit},
        ),
        # Ready while the model answers: /v2/health/ready stays 200 after an unload, the model's own turns 503.
        readiness_probe=V1Probe(
            http_get=V1HTTPGetAction(path=f"/v2/models/{settings.name}/ready", port=HTTP_PORT),
            initial_delay_seconds=5,
            period_seconds=5,
        ),
        liveness_probe=V1Probe(
            http_get=V1HTTPGetAction(path="/v2/health/live", port=HTTP_PORT),
            initial_delay_seconds=30,
            period_seconds=20,
            failure_threshold=6,
        ),
        security_context=V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=V1Capabilities(drop=["ALL"]),
        ),
        volume_mounts=[V1VolumeMount(name="tmp", mount_path="/tmp")],
    )
    predictor = V1beta1PredictorSpec(
        containers=[container],
        service_account_name=settings.service_account_name,
        security_context=V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=NON_ROOT_USER,
            run_as_group=NON_ROOT_USER,
            fs_group=NON_ROOT_USER,
            seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
        ),
        volumes=[V1Volume(name="tmp", empty_dir=V1EmptyDirVolumeSource(size_limit="1Gi"))],
        min_replicas=plan.min_replicas,
        max_replicas=plan.max_replicas,
        auto_scaling=_auto_scaling(settings),
        canary_traffic_percent=settings.canary_traffic_percent if plan.canaries else None,
        logger=V1beta1LoggerSpec(mode="all", url=settings.request_logger_url) if settings.request_logger_url else None,
    )
    annotations = {MODEL_VERSION_ANNOTATION: settings.model_version, DEPLOYMENT_MODE_ANNOTATION: plan.deployment_mode}
    if plan.deployment_mode == "Standard":
        annotations[AUTOSCALER_CLASS_ANNOTATION] = plan.autoscaler
        if plan.autoscaler == "keda":
            annotations.update(PROMETHEUS_POD_ANNOTATIONS)
    return V1beta1InferenceService(
        api_version=constants.KSERVE_V1BETA1,
        kind=constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=V1ObjectMeta(
            name=settings.name,
            namespace=settings.namespace,
            labels={
                "app.kubernetes.io/name": "textclf",
                "app.kubernetes.io/component": "predictor",
                "app.kubernetes.io/part-of": "textclf",
            },
            annotations=annotations,
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def as_manifest(inference_service: Any) -> dict:
    """The plain dict `kubectl apply` takes (camelCase keys, no empty fields)."""
    from kserve import ApiClient

    return ApiClient().sanitize_for_serialization(inference_service)


def serving_storage_uri(manifest: dict | None) -> str | None:
    """The STORAGE_URI of the kserve-container in an InferenceService's predictor or a Deployment's pod template."""
    if manifest is None:
        return None
    spec = manifest.get("spec", {})
    pod = spec.get("predictor") or spec.get("template", {}).get("spec", {})
    for container in pod.get("containers", []):
        if container.get("name") == CONTAINER_NAME:
            for variable in container.get("env", []):
                if variable.get("name") == "STORAGE_URI":
                    return variable.get("value")
    return None


class ClusterApi(Protocol):
    """The Kubernetes calls a rollout makes; `KubernetesApi` makes them for real, tests use an in-memory one."""

    def get_inference_service(self, namespace: str, name: str) -> dict | None: ...

    def create_inference_service(self, namespace: str, body: dict) -> dict: ...

    def replace_inference_service(self, namespace: str, name: str, body: dict) -> dict: ...

    def get_deployment(self, namespace: str, name: str) -> dict | None: ...


class KubernetesApi:
    """In-cluster (the deploy step's ServiceAccount) or the current kubeconfig context."""

    def __init__(self) -> None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        self._api_client = client.ApiClient()
        self._custom = client.CustomObjectsApi(self._api_client)
        self._apps = client.AppsV1Api(self._api_client)

    def _absent_is_none(self, call: Any, *arguments: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return call(*arguments)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def get_inference_service(self, namespace: str, name: str) -> dict | None:
        return self._absent_is_none(
            self._custom.get_namespaced_custom_object, KSERVE_GROUP, KSERVE_VERSION, namespace, KSERVE_PLURAL, name
        )

    def create_inference_service(self, namespace: str, body: dict) -> dict:
        return self._custom.create_namespaced_custom_object(
            KSERVE_GROUP, KSERVE_VERSION, namespace, KSERVE_PLURAL, body
        )

    def replace_inference_service(self, namespace: str, name: str, body: dict) -> dict:
        return self._custom.replace_namespaced_custom_object(
            KSERVE_GROUP, KSERVE_VERSION, namespace, KSERVE_PLURAL, name, body
        )

    def get_deployment(self, namespace: str, name: str) -> dict | None:
        deployment = self._absent_is_none(self._apps.read_namespaced_deployment, name, namespace)
        return None if deployment is None else self._api_client.sanitize_for_serialization(deployment)


def _ready_condition(inference_service: dict) -> tuple[bool, str]:
    for condition in inference_service.get("status", {}).get("conditions", []):
        if condition.get("type") == "Ready":
            reason = condition.get("message") or condition.get("reason") or ""
            return condition.get("status") == "True", reason
    return False, "no Ready condition yet"


def deployment_rollout(deployment: dict | None) -> DeploymentRollout | None:
    if deployment is None:
        return None
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    problems = [
        condition.get("message", "")
        for condition in status.get("conditions", [])
        if (condition.get("type"), condition.get("status")) in {("Progressing", "False"), ("ReplicaFailure", "True")}
    ]
    return DeploymentRollout(
        generation=deployment.get("metadata", {}).get("generation", 0),
        observed_generation=status.get("observedGeneration", 0),
        replicas=spec.get("replicas", 1),
        updated_replicas=status.get("updatedReplicas", 0),
        available_replicas=status.get("availableReplicas", 0),
        total_replicas=status.get("replicas", 0),
        storage_uri=serving_storage_uri(deployment),
        problem="; ".join(p for p in problems if p),
    )


def rolled_out(api: ClusterApi, settings: InferenceServiceSettings, previous_revision: str | None) -> str:
    """Why the new spec does not serve yet ("" once it does).

    In Standard mode KServe copies the predictor Deployment's observedGeneration into the InferenceService's
    status (inference_service_status.go, PropagateRawStatus), so the InferenceService's Ready condition and
    generation cannot tell an old pod from a new one. The Deployment can: its pod template must hold the new
    STORAGE_URI and have rolled out to every replica. In Knative mode the predictor's latest created revision
    must differ from the one before the change and be the latest ready one."""
    inference_service = api.get_inference_service(settings.namespace, settings.name)
    if inference_service is None:
        return "the InferenceService is gone"
    ready, reason = _ready_condition(inference_service)
    if settings.plan.deployment_mode == "Knative":
        predictor = inference_service.get("status", {}).get("components", {}).get("predictor", {})
        created = predictor.get("latestCreatedRevision")
        if created is None or created == previous_revision:
            return "Knative has not created the new revision yet"
        if predictor.get("latestReadyRevision") != created:
            return f"revision {created} is not ready: {reason}"
        return "" if ready else f"not Ready: {reason}"
    rollout = deployment_rollout(api.get_deployment(settings.namespace, f"{settings.name}-predictor"))
    pending = rollout_pending(rollout, settings.storage_uri)
    if pending:
        problem = rollout.problem if rollout is not None else ""
        return f"{pending}{f' ({problem})' if problem else ''}"
    return "" if ready else f"not Ready: {reason}"


def _wait(
    api: ClusterApi,
    settings: InferenceServiceSettings,
    previous_revision: str | None,
    timeout_seconds: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> str:
    """Poll until the spec serves; "" then, else the last reason it did not."""
    deadline = clock() + timeout_seconds
    while True:
        pending = rolled_out(api, settings, previous_revision)
        if not pending or clock() >= deadline:
            return pending
        sleep(POLL_SECONDS)


def _predictor_revision(inference_service: dict | None) -> str | None:
    if inference_service is None:
        return None
    return inference_service.get("status", {}).get("components", {}).get("predictor", {}).get("latestCreatedRevision")


def _apply(api: ClusterApi, settings: InferenceServiceSettings, step: RolloutStep, existing: dict | None) -> None:
    """Create, or replace the whole spec (labels and annotations too) so no field of the previous one lingers."""
    body = as_manifest(build_inference_service(replace(settings, canary_traffic_percent=step.canary_traffic_percent)))
    if existing is None:
        api.create_inference_service(settings.namespace, body)
        return
    body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
    api.replace_inference_service(settings.namespace, settings.name, body)


def _reapply_previous(api: ClusterApi, settings: InferenceServiceSettings, previous: dict) -> None:
    current = api.get_inference_service(settings.namespace, settings.name)
    body = {
        "apiVersion": previous["apiVersion"],
        "kind": previous["kind"],
        "metadata": {
            "name": settings.name,
            "namespace": settings.namespace,
            "labels": previous["metadata"].get("labels", {}),
            "annotations": {
                key: value
                for key, value in previous["metadata"].get("annotations", {}).items()
                if key != "kubectl.kubernetes.io/last-applied-configuration"
            },
        },
        "spec": previous["spec"],
    }
    if current is None:
        api.create_inference_service(settings.namespace, body)
        return
    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    api.replace_inference_service(settings.namespace, settings.name, body)


def api_failure(error: Exception) -> str:
    """One line for a failed call: the Kubernetes API's status code, reason and message where it answered."""
    import json

    status = getattr(error, "status", None)
    if status is None:
        return f"{type(error).__name__}: {error}"
    try:
        body = json.loads(getattr(error, "body", None) or "{}")
    except ValueError:
        body = {}
    message = body.get("message") or getattr(error, "reason", "") or ""
    return f"the Kubernetes API answered {status} {body.get('reason') or ''}: {message}".replace("  ", " ")


def roll_out(
    api: ClusterApi,
    settings: InferenceServiceSettings,
    timeout_seconds: int,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Serve `settings` with the previous revision serving until the new one has rolled out (Standard mode) or
    passed its canary (Knative mode). On failure the previous spec is applied again and `DeployError` says why.
    Returns what happened."""
    existing = api.get_inference_service(settings.namespace, settings.name)
    step = first_rollout_step(serving_storage_uri(existing), settings.storage_uri, settings.plan)
    logger.info("rollout: %s (%s)", step.action, step.reason)
    previous_revision = _predictor_revision(existing)
    _apply(api, settings, step, existing)
    # Once the new spec is applied, any failure, a refused or failed API call included, restores the previous one.
    try:
        pending = _wait(api, settings, previous_revision, timeout_seconds, clock, sleep)
        follow_up = after_wait(step, not pending)
        if follow_up is not None and follow_up.action == "promote":
            logger.info("rollout: %s (%s)", follow_up.action, follow_up.reason)
            _apply(api, settings, follow_up, api.get_inference_service(settings.namespace, settings.name))
            # Promoting moves traffic, it creates no revision: the canary's revision must keep serving.
            pending = _wait(api, settings, None, timeout_seconds, clock, sleep)
    except Exception as error:  # the cluster's own answer, whatever its type, is the reason reported
        pending, follow_up = f"watching the rollout failed: {api_failure(error)}", None
    if pending:
        failure = f"{settings.name} v{settings.model_version} did not serve within {timeout_seconds}s: {pending}"
        if existing is None:
            raise DeployError(f"{failure}; there was no previous InferenceService to restore")
        logger.warning("rollout: %s; applying the previous spec again", failure)
        try:
            _reapply_previous(api, settings, existing)
        except Exception as error:
            raise DeployError(
                f"{failure}; applying the previous spec again failed too: {api_failure(error)}"
            ) from error
        previous_version = existing["metadata"].get("annotations", {}).get(MODEL_VERSION_ANNOTATION, "?")
        raise DeployError(f"{failure}; the previous spec (model version {previous_version}) was applied again")
    return f"{step.reason}; {follow_up.reason if follow_up else 'rolled out'}"


def deploy_to_cluster(
    model_name: str,
    version: str,
    tracking_uri: str,
    namespace: str,
    inference_service_name: str,
    image: str,
    artifact_store_uri: str,
    request_logger_url: str,
    plan: ServingPlan,
    timeout_seconds: int,
    shadow_model: str = "",
) -> str:
    """Roll the registered version out as the InferenceService, from its artifact in the object store."""
    from mlflow.tracking import MlflowClient

    from textclf.deploy.rollout import registered_storage_uri

    client = MlflowClient(tracking_uri, tracking_uri)
    settings = InferenceServiceSettings(
        name=inference_service_name,
        namespace=namespace,
        storage_uri=registered_storage_uri(client, model_name, version, artifact_store_uri),
        model_version=version,
        image=image,
        request_logger_url=request_logger_url,
        plan=plan,
        shadow_model=shadow_model,
        tracking_uri=tracking_uri,
    )
    return roll_out(KubernetesApi(), settings, timeout_seconds)


# Field types the SDK declares by name but has no model for: KServe's MetricQuantity is a quantity string or an
# integer (pkg/apis/serving/v1beta1/metric_quantity.go, UnmarshalJSON).
PRIMITIVES = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
    "object": object,
    "V1beta1MetricQuantity": (str, int),
}


def _as_sdk_model(data: Any, type_name: str, where: str) -> Any:
    """Build the kserve SDK's model (and the Kubernetes client's models inside it) from a manifest's dict,
    refusing fields the models do not declare; the models check required fields and enums themselves."""
    import kserve.models
    import kubernetes.client.models

    if type_name.startswith("list["):
        if not isinstance(data, list):
            raise TypeError(f"{where}: expected a list")
        return [_as_sdk_model(item, type_name[5:-1], f"{where}[{i}]") for i, item in enumerate(data)]
    if type_name.startswith("dict("):
        if not isinstance(data, dict):
            raise TypeError(f"{where}: expected a mapping")
        value_type = type_name[type_name.index(",") + 1 : -1].strip()
        return {k: _as_sdk_model(v, value_type, f"{where}.{k}") for k, v in data.items()}
    if type_name in PRIMITIVES:
        if not isinstance(data, PRIMITIVES[type_name]) or (type_name != "bool" and isinstance(data, bool)):
            raise TypeError(f"{where}: expected {type_name}, got {data!r}")
        return data
    model = getattr(kserve.models, type_name, None) or getattr(kubernetes.client.models, type_name)
    if not isinstance(data, dict):
        raise TypeError(f"{where}: expected a {type_name} mapping")
    fields = {json_name: attribute for attribute, json_name in model.attribute_map.items()}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"{where}: {type_name} has no field {', '.join(sorted(unknown))}")
    return model(
        **{fields[k]: _as_sdk_model(v, model.openapi_types[fields[k]], f"{where}.{k}") for k, v in data.items()}
    )


def inference_service_errors(document: dict) -> list[str]:
    """An InferenceService rebuilt through the kserve SDK's models (a field they would drop is unknown)."""
    name = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
    try:
        _as_sdk_model(document, "V1beta1InferenceService", name)
    except (ValueError, TypeError) as error:
        return [str(error)]
    return []


def manifest_problems(documents: list[dict[str, Any]]) -> list[str]:
    """Every problem of these resources: schemas (the InferenceService through the kserve SDK, the rest against
    Kubernetes' schemas) and the workload policy."""
    problems = []
    for document in documents:
        if document.get("kind") == "InferenceService":
            problems += inference_service_errors(document)
        else:
            problems += kubernetes_schema_errors(document)
        problems += policy_violations(document)
    return problems
