from __future__ import annotations

import pytest

from textclf.deploy.rollout import DeployError, ServingPlan, after_wait, first_rollout_step, storage_uri_for
from textclf.names import MONITOR_EVENTS_URL, SERVING_IMAGE, SERVING_RESOURCES

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("source", "store", "expected"),
    [
        ("s3://mlflow/1/abc/artifacts/model", "", "s3://mlflow/1/abc/artifacts/model"),
        ("gs://bucket/model/", "", "gs://bucket/model"),
        ("mlflow-artifacts:/1/abc/artifacts/model", "s3://mlflow/", "s3://mlflow/1/abc/artifacts/model"),
    ],
)
def test_storage_uri_is_what_the_storage_initializer_can_read(source: str, store: str, expected: str) -> None:
    assert storage_uri_for(source, store) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("mlflow-artifacts:/1/abc/artifacts/model", "set artifact_store_uri"),
        ("file:///tmp/mlartifacts/model", "object store"),
        ("/tmp/model", "object store"),
    ],
)
def test_unreadable_sources_say_what_to_configure(source: str, message: str) -> None:
    with pytest.raises(DeployError, match=message):
        storage_uri_for(source)


def test_knative_mode_creates_then_canaries_then_promotes_or_rolls_back() -> None:
    knative = ServingPlan(deployment_mode="Knative", canary_traffic_percent=10)
    assert first_rollout_step(None, "s3://m/2", knative).action == "create"
    canary = first_rollout_step("s3://m/1", "s3://m/2", knative)
    assert (canary.action, canary.canary_traffic_percent) == ("canary", 10)
    assert after_wait(canary, became_ready=True).action == "promote"
    assert after_wait(canary, became_ready=False).action == "rollback"
    assert first_rollout_step("s3://m/2", "s3://m/2", knative).action == "promote"
    assert after_wait(first_rollout_step(None, "s3://m/2", knative), became_ready=True) is None


def test_standard_mode_never_claims_a_canary() -> None:
    # Only KServe's Knative reconciler reads canaryTrafficPercent; Standard mode is a rolling update.
    step = first_rollout_step("s3://m/1", "s3://m/2", ServingPlan())
    assert (step.action, step.canary_traffic_percent) == ("promote", None)
    assert "rolling update" in step.reason and "canary" not in step.reason


def test_inference_service_is_built_and_validated_by_the_kserve_sdk() -> None:
    from kserve import V1beta1InferenceService

    from textclf.serving.inference_service import InferenceServiceSettings, as_manifest, build_inference_service

    settings = InferenceServiceSettings(
        name="textclf",
        namespace="textclf",
        storage_uri="s3://mlflow/1/abc/artifacts/model",
        model_version="7",
        request_logger_url=MONITOR_EVENTS_URL,
        plan=ServingPlan(deployment_mode="Knative"),
        canary_traffic_percent=10,
    )
    inference_service = build_inference_service(settings)
    assert isinstance(inference_service, V1beta1InferenceService)
    manifest = as_manifest(inference_service)
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert manifest["kind"] == "InferenceService"
    assert manifest["metadata"]["annotations"]["textclf.io/model-version"] == "7"
    predictor = manifest["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["logger"] == {"mode": "all", "url": MONITOR_EVENTS_URL}
    [container] = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == SERVING_IMAGE
    assert {"name": "STORAGE_URI", "value": "s3://mlflow/1/abc/artifacts/model"} in container["env"]
    # The predictor reports the registry version, which the monitor maps to that version's reference sample.
    assert {"name": "TEXTCLF_SERVE_MODEL_VERSION", "value": "7"} in container["env"]
    assert container["args"][container["args"].index("--model") + 1] == "/mnt/models"
    assert container["resources"]["limits"] == {
        "cpu": SERVING_RESOURCES.cpu_limit,
        "memory": SERVING_RESOURCES.memory_limit,
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/models/textclf/ready"

    # A first rollout has no canary field; no logger URL means no logger.
    plain = as_manifest(build_inference_service(InferenceServiceSettings("textclf", "textclf", "s3://b/m", "1")))
    assert "canaryTrafficPercent" not in plain["spec"]["predictor"]
    assert "logger" not in plain["spec"]["predictor"]

    # The SDK's model classes refuse what the CRD forbids.
    from kserve import V1beta1InferenceServiceSpec

    with pytest.raises(ValueError):
        V1beta1InferenceServiceSpec(predictor=None)
