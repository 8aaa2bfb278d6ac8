"""The Helm chart, rendered and linted offline through Helm's own Go SDK (the `helm-python-sdk` wheel bundles
it): it lints clean, its values schema refuses bad values, its defaults come from names.py, its parts can be
switched off, and its `helm test` hook sends a v2 request to the predictor (the schema and policy checks of
every rendered resource are in test_manifests.py)."""

from __future__ import annotations

import helm_python
import pytest
import yaml

from textclf import __version__
from textclf.deploy.manifests import CHART, is_hook, render_chart
from textclf.names import IMAGE_REGISTRY, MLFLOW_RESOURCES, MONITOR_RESOURCES, SERVING_IMAGE, SERVING_RESOURCES

pytestmark = pytest.mark.unit

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def test_the_chart_lints_clean() -> None:
    report = helm_python.lint(CHART, strict=True, namespace="textclf")
    assert report["errors"] == []
    assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]


def test_defaults_come_from_names_py() -> None:
    assert VALUES["image"]["registry"] == IMAGE_REGISTRY
    assert VALUES["image"]["tag"] == __version__
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"] == __version__
    for values, resources in (
        (VALUES["monitor"], MONITOR_RESOURCES),
        (VALUES["mlflow"], MLFLOW_RESOURCES),
        (VALUES["inferenceService"], SERVING_RESOURCES),
    ):
        assert values["resources"]["limits"] == {"cpu": resources.cpu_limit, "memory": resources.memory_limit}
        assert values["resources"]["requests"] == {"cpu": resources.cpu_request, "memory": resources.memory_request}


@pytest.mark.parametrize(
    "values",
    [
        {"monitor": {"windowSize": "lots"}},
        {"monitor": {"resources": {"requests": {"cpu": "one core"}}}},
        {"image": {"pullPolicy": "Sometimes"}},
        {"monitor": {"unknownSetting": True}},
        {"inferenceService": {"storageUri": "s3://mlpipeline/mlflow/1/m"}},
        {"inferenceService": {"storageUri": "/models/on/my/laptop", "modelVersion": "1"}},
        {"nodePorts": {"enabled": True, "predictor": 8090}},
        {"objectStore": {"artifactStoreUri": "mlflow-artifacts:/"}},
    ],
    ids=[
        "window-size",
        "cpu",
        "pull-policy",
        "unknown",
        "storage-uri-without-version",
        "local-path",
        "node-port-range",
        "artifact-store",
    ],
)
def test_the_values_schema_refuses_bad_values(values: dict) -> None:
    with pytest.raises(helm_python.HelmValuesError):
        render_chart(values)


def test_parts_can_be_left_out() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in render_chart({"monitor": {"enabled": False}})}
    assert not {name for _, name in kinds if "monitor" in name or "drift" in name}
    assert ("Deployment", "mlflow") in kinds
    without_mlflow = render_chart({"mlflow": {"enabled": False, "url": "http://mlflow.example:5000"}})
    assert "mlflow" not in {d["metadata"]["name"] for d in without_mlflow}
    (config,) = [d for d in without_mlflow if d["kind"] == "ConfigMap"]
    assert config["data"]["TEXTCLF_MONITOR_TRACKING_URI"] == "http://mlflow.example:5000"
    assert yaml.safe_load(config["data"]["training.yaml"])["tracking_uri"] == "http://mlflow.example:5000"


def test_the_inference_service_is_left_to_the_pipeline_unless_a_version_is_pinned() -> None:
    assert "InferenceService" not in {d["kind"] for d in render_chart()}
    pinned = render_chart({"inferenceService": {"storageUri": "s3://mlpipeline/mlflow/3/m", "modelVersion": "3"}})
    (service,) = [d for d in pinned if d["kind"] == "InferenceService"]
    assert service["metadata"]["annotations"]["textclf.io/model-version"] == "3"


def test_the_helm_test_hook_sends_a_v2_request_to_the_predictor() -> None:
    (hook,) = [d for d in render_chart() if is_hook(d)]
    assert hook["kind"] == "Pod" and hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = hook["spec"]["containers"]
    assert container["image"] == SERVING_IMAGE
    script = container["args"][0]
    assert "http://textclf-predictor.textclf.svc.cluster.local/v2/models/textclf/infer" in script
