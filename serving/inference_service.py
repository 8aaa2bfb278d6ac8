"""The champion's InferenceService, built from the kserve SDK's model classes, and its rollout on a cluster."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

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
from textclf.deploy.rollout import DeployError, RolloutStep, after_wait, first_rollout_step
from textclf.names import AUTH_SECRET, PREDICTOR_SERVICE_ACCOUNT, SERVING_IMAGE, SERVING_RESOURCES, StepResources

logger = logging.getLogger(__name__)

HTTP_PORT = 8080
MODEL_MOUNT = "/mnt/models"
# KServe's Kubernetes-native mode (called Standard since KServe 0.17, which still accepts this name).
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
DEPLOYMENT_MODE = "RawDeployment"
NON_ROOT_USER = 1000


@dataclass(frozen=True)
class InferenceServiceSettings:
    name: str
    namespace: str
    storage_uri: str
    model_version: str
    image: str = SERVING_IMAGE
    resources: StepResources = SERVING_RESOURCES
    request_logger_url: str = ""
    canary_traffic_percent: int | None = None
    min_replicas: int = 1
    max_replicas: int = 3
    # Holds the object store's credentials Secret, which KServe's storage initializer reads.
    service_account_name: str = PREDICTOR_SERVICE_ACCOUNT


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

    container = V1Container(
        name="kserve-container",
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
        min_replicas=settings.min_replicas,
        max_replicas=settings.max_replicas,
        canary_traffic_percent=settings.canary_traffic_percent,
        logger=V1beta1LoggerSpec(mode="all", url=settings.request_logger_url) if settings.request_logger_url else None,
    )
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
            annotations={
                "textclf.io/model-version": settings.model_version,
                DEPLOYMENT_MODE_ANNOTATION: DEPLOYMENT_MODE,
            },
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def as_manifest(inference_service: Any) -> dict:
    """The plain dict `kubectl apply` takes (camelCase keys, no empty fields)."""
    from kserve import ApiClient

    return ApiClient().sanitize_for_serialization(inference_service)


def _serving_storage_uri(existing: dict | None) -> str | None:
    if existing is None:
        return None
    for container in existing.get("spec", {}).get("predictor", {}).get("containers", []):
        for variable in container.get("env", []):
            if variable.get("name") == "STORAGE_URI":
                return variable.get("value")
    return None


def roll_out(settings: InferenceServiceSettings, canary_percent: int, timeout_seconds: int) -> str:
    """Create or patch the InferenceService, wait for Ready, then promote the canary or roll it back;
    the previous revision keeps serving until the new one is Ready. Returns what happened."""
    from kserve import KServeClient
    from kubernetes.client.exceptions import ApiException

    client = KServeClient()
    try:
        existing = client.get(settings.name, namespace=settings.namespace)
    except (RuntimeError, ApiException) as error:
        if "404" not in str(error) and "Not Found" not in str(error):
            raise
        existing = None
    step = first_rollout_step(_serving_storage_uri(existing), settings.storage_uri, canary_percent)
    logger.info("rollout: %s (%s)", step.action, step.reason)
    _apply(client, settings, step, existing is not None)
    ready = _wait_ready(client, settings, timeout_seconds)
    follow_up = after_wait(step, ready)
    if follow_up is not None:
        logger.info("rollout: %s (%s)", follow_up.action, follow_up.reason)
        _apply(client, settings, follow_up, True)
        if follow_up.action == "rollback":
            raise DeployError(
                f"{settings.name} v{settings.model_version} did not become Ready in {timeout_seconds}s; "
                "the previous revision serves all traffic"
            )
        ready = _wait_ready(client, settings, timeout_seconds)
    if not ready:
        raise DeployError(f"{settings.name} did not become Ready within {timeout_seconds}s")
    return f"{step.reason}; {follow_up.reason if follow_up else 'done'}"


def _apply(client: Any, settings: InferenceServiceSettings, step: RolloutStep, exists: bool) -> None:
    """Create, or patch the whole spec: the new storage URI with the step's traffic share. A rollback keeps
    the failed revision with 0% for inspection while the previous one takes all traffic."""
    percent = step.canary_traffic_percent
    if exists and percent is None:
        percent = 100
    inference_service = build_inference_service(replace(settings, canary_traffic_percent=percent))
    if exists:
        client.patch(settings.name, inference_service, namespace=settings.namespace)
    else:
        client.create(inference_service, namespace=settings.namespace)


def _wait_ready(client: Any, settings: InferenceServiceSettings, timeout_seconds: int) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if client.is_isvc_ready(settings.name, namespace=settings.namespace):
            return True
        time.sleep(5)
    return False


def deploy_to_cluster(
    model_name: str,
    version: str,
    tracking_uri: str,
    namespace: str,
    inference_service_name: str,
    image: str,
    artifact_store_uri: str,
    request_logger_url: str,
    canary_traffic_percent: int,
    timeout_seconds: int,
) -> str:
    """Roll the registered version out as the InferenceService, from its artifact in the object store."""
    from mlflow.tracking import MlflowClient

    from textclf.deploy.rollout import storage_uri_for

    source = MlflowClient(tracking_uri, tracking_uri).get_model_version_download_uri(model_name, version)
    settings = InferenceServiceSettings(
        name=inference_service_name,
        namespace=namespace,
        storage_uri=storage_uri_for(source, artifact_store_uri),
        model_version=version,
        image=image,
        request_logger_url=request_logger_url,
    )
    return roll_out(settings, canary_traffic_percent, timeout_seconds)


PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}


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
