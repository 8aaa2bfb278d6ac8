"""The stack's Kubernetes resources, validated offline: `manifests/` is generated from the chart and fresh;
every resource (raw and rendered with each value set) passes the Kubernetes schemas, the kserve SDK's models
and the workload policy; RBAC is least-privilege; names agree with names.py; a broken fixture fails."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import yaml

from textclf.deploy import manifests
from textclf.deploy.manifests import (
    KIND_VALUES,
    MANIFESTS,
    PINNED_MODEL_VALUES,
    REPO,
    load_manifests,
    pod_spec,
    render_chart,
)
from textclf.names import (
    ARTIFACT_STORE_URI,
    COMPONENTS_IMAGE,
    DRIFT_CHECK_CRONJOB_NAME,
    MLFLOW_PORT,
    MLFLOW_RESOURCES,
    MLFLOW_SERVICE_NAME,
    MLFLOW_URL,
    MONITOR_EVENTS_URL,
    MONITOR_IMAGE,
    MONITOR_PORT,
    MONITOR_RESOURCES,
    MONITOR_SERVICE_NAME,
    MONITOR_URL,
    OBJECT_STORE_ENDPOINT,
    OBJECT_STORE_SECRET,
    PIPELINE_NAMESPACE,
    PIPELINE_SERVICE_ACCOUNT,
    PREDICTOR_SERVICE_ACCOUNT,
    SERVING_NAMESPACE,
    StepResources,
)
from textclf.serving.inference_service import manifest_problems as problems

pytestmark = pytest.mark.unit

DOCUMENTS = load_manifests()
# What `make deploy` installs: the chart's PostgreSQL behind MLflow (two replicas), the monitor and Optuna.
POSTGRESQL_VALUES = {"postgresql": {"enabled": True}, "mlflow": {"replicas": 2}}
SHADOW_MODEL = "models:/textclf@challenger"
SHADOW_VALUES = {"inferenceService": {**PINNED_MODEL_VALUES["inferenceService"], "shadowModel": SHADOW_MODEL}}
VALUE_SETS = {
    "defaults": None,
    "kind": KIND_VALUES,
    "pinned-model": PINNED_MODEL_VALUES,
    "without-monitor-and-mlflow": {"monitor": {"enabled": False}, "mlflow": {"enabled": False, "url": MLFLOW_URL}},
    "postgresql": POSTGRESQL_VALUES,
    "shadow": SHADOW_VALUES,
}


def one(kind: str, name: str, documents: list[dict] = DOCUMENTS) -> dict:
    (document,) = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return document


def resources_of(resources: StepResources) -> dict:
    return {
        "requests": {"cpu": resources.cpu_request, "memory": resources.memory_request},
        "limits": {"cpu": resources.cpu_limit, "memory": resources.memory_limit},
    }


def test_manifests_are_generated_from_the_chart_and_fresh() -> None:
    on_disk = {str(p.relative_to(MANIFESTS)): p.read_text() for p in MANIFESTS.rglob("*.yaml")}
    assert on_disk == manifests.generated_manifests(), "manifests/ is stale: run `make manifests` and commit it"


def test_every_kustomization_lists_the_files_beside_it() -> None:
    for kustomization in MANIFESTS.rglob("kustomization.yaml"):
        listed = {r for r in yaml.safe_load(kustomization.read_text())["resources"] if not r.startswith("..")}
        beside = {p.name for p in kustomization.parent.glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == beside, kustomization


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_validates_and_follows_the_workload_policy(document: dict) -> None:
    assert problems([document]) == []
    if document["kind"] != "Namespace":
        assert document["metadata"]["namespace"] == SERVING_NAMESPACE


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_chart_resource_validates_and_follows_the_policy(values: dict | None) -> None:
    documents = render_chart(values)
    assert documents
    assert problems(documents) == []
    assert {d["metadata"]["namespace"] for d in documents} == {SERVING_NAMESPACE}


def test_a_deliberately_broken_fixture_fails_for_the_right_reasons() -> None:
    broken = list(yaml.safe_load_all((REPO / "tests" / "fixtures" / "broken-manifests.yaml").read_text()))
    assert len(broken) == 4
    for document in broken:
        found = problems([document])
        for expected in document["metadata"]["annotations"]["expect"].split("|"):
            assert any(expected in problem for problem in found), (expected, found)
    # Untouched, the same checks pass on the real resources (the parametrized tests above).


def test_every_pod_is_covered_by_a_network_policy() -> None:
    policies = [d for d in DOCUMENTS if d["kind"] == "NetworkPolicy"]
    workloads = [
        d
        for d in DOCUMENTS + render_chart(PINNED_MODEL_VALUES) + render_chart(POSTGRESQL_VALUES)
        if d["kind"] in {"Deployment", "StatefulSet"}
    ]
    policies += [d for d in render_chart(POSTGRESQL_VALUES) if d["kind"] == "NetworkPolicy"]
    for workload in workloads:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert any(p["spec"]["podSelector"]["matchLabels"].items() <= labels.items() for p in policies), workload[
            "metadata"
        ]["name"]
    predictor = one("NetworkPolicy", "textclf-predictor")
    assert predictor["spec"]["podSelector"]["matchLabels"] == {"serving.kserve.io/inferenceservice": "textclf"}


def test_the_pipeline_may_only_manage_inference_services_and_trainjobs_in_the_serving_namespace() -> None:
    assert not [d for d in DOCUMENTS if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    role = one("Role", "textclf-pipeline-deploy")
    assert role["metadata"]["namespace"] == SERVING_NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "verbs": ["get", "list", "watch", "create", "update", "patch"],
        },
        # A Standard-mode rollout is done when the predictor Deployment has rolled out the new pod template.
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
        # The train step's TrainJobs (workers > 1); deleted when they outlive trainjob_timeout_seconds.
        {
            "apiGroups": ["trainer.kubeflow.org"],
            "resources": ["trainjobs"],
            "verbs": ["get", "list", "watch", "create", "delete"],
        },
    ]
    binding = one("RoleBinding", "textclf-pipeline-deploy")
    assert binding["roleRef"]["name"] == "textclf-pipeline-deploy"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": PIPELINE_SERVICE_ACCOUNT, "namespace": PIPELINE_NAMESPACE}
    ]


def test_the_monitor_may_only_create_pipeline_runs_and_nothing_else_talks_to_the_api() -> None:
    role = one("Role", "textclf-monitor-create-pipeline-runs")
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["pipelines.kubeflow.org"]
        assert set(rule["verbs"]) <= {"create", "get", "list"}
    assert {r for rule in role["rules"] if "create" in rule["verbs"] for r in rule["resources"]} == {"runs"}
    assert one("RoleBinding", "textclf-monitor-create-pipeline-runs")["subjects"] == [
        {"kind": "ServiceAccount", "name": MONITOR_SERVICE_NAME, "namespace": SERVING_NAMESPACE}
    ]
    bound = {s["name"] for d in DOCUMENTS if d["kind"] == "RoleBinding" for s in d["subjects"]}
    for account in [d for d in DOCUMENTS if d["kind"] == "ServiceAccount"]:
        if account["metadata"]["name"] not in bound:
            assert account["automountServiceAccountToken"] is False, account["metadata"]["name"]


def test_resources_agree_with_names_py() -> None:
    monitor = pod_spec(one("Deployment", MONITOR_SERVICE_NAME))["containers"][0]
    assert monitor["image"] == MONITOR_IMAGE and monitor["resources"] == resources_of(MONITOR_RESOURCES)
    assert monitor["ports"][0]["containerPort"] == MONITOR_PORT
    assert one("Service", MONITOR_SERVICE_NAME)["spec"]["ports"][0]["port"] == MONITOR_PORT
    check = pod_spec(one("CronJob", DRIFT_CHECK_CRONJOB_NAME))["containers"][0]
    assert check["image"] == MONITOR_IMAGE and check["args"] == ["check", "--monitor-url", MONITOR_URL]

    mlflow = pod_spec(one("Deployment", MLFLOW_SERVICE_NAME))["containers"][0]
    assert mlflow["image"] == COMPONENTS_IMAGE and mlflow["resources"] == resources_of(MLFLOW_RESOURCES)
    assert f"--artifacts-destination={ARTIFACT_STORE_URI}" in mlflow["args"]
    assert {"name": "MLFLOW_S3_ENDPOINT_URL", "value": f"http://{OBJECT_STORE_ENDPOINT}"} in mlflow["env"]
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in mlflow["env"] if "valueFrom" in e}
    assert secrets == {OBJECT_STORE_SECRET}
    assert one("Service", MLFLOW_SERVICE_NAME)["spec"]["ports"][0]["port"] == MLFLOW_PORT
    assert mlflow["ports"][0]["containerPort"] == MLFLOW_PORT

    config = one("ConfigMap", MONITOR_SERVICE_NAME)["data"]
    assert config["TEXTCLF_MONITOR_PUBLIC_URL"] == MONITOR_URL
    assert config["TEXTCLF_MONITOR_TRACKING_URI"] == MLFLOW_URL
    predictor_account = one("ServiceAccount", PREDICTOR_SERVICE_ACCOUNT)
    assert predictor_account["secrets"] == [{"name": OBJECT_STORE_SECRET}]


def test_the_monitor_settings_and_its_retraining_config_are_valid() -> None:
    from textclf.config import MONITOR_ENV_PREFIX, MonitorConfig, PipelineConfig

    config = one("ConfigMap", MONITOR_SERVICE_NAME)["data"]
    fields = {key.removeprefix(MONITOR_ENV_PREFIX).lower() for key in config if key.startswith("TEXTCLF_")}
    assert fields <= set(MonitorConfig.model_fields)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no flat name of the last release
        training = PipelineConfig.model_validate(yaml.safe_load(config["training.yaml"]))
        # `make pipeline` submits the same cluster configuration the monitor's retraining runs start from.
        cluster = PipelineConfig.model_validate(yaml.safe_load((REPO / "pipelines" / "cluster.yaml").read_text()))
    assert training.tracking_uri == MLFLOW_URL and training.serving.artifact_store_uri == ARTIFACT_STORE_URI
    assert cluster.tracking_uri == training.tracking_uri and cluster.data == training.data


def test_the_pinned_inference_service_is_what_the_deploy_step_builds() -> None:
    from textclf.serving.inference_service import InferenceServiceSettings, as_manifest, build_inference_service

    pinned = one("InferenceService", "textclf")
    container = pinned["spec"]["predictor"]["containers"][0]
    storage_uri = next(e["value"] for e in container["env"] if e["name"] == "STORAGE_URI")
    version = pinned["metadata"]["annotations"]["textclf.io/model-version"]
    built = build_inference_service(
        InferenceServiceSettings(
            "textclf", SERVING_NAMESPACE, storage_uri, version, request_logger_url=MONITOR_EVENTS_URL
        )
    )
    assert as_manifest(built) == pinned
    shadowing = one("InferenceService", "textclf", render_chart(SHADOW_VALUES))
    built = InferenceServiceSettings(
        "textclf",
        SERVING_NAMESPACE,
        storage_uri,
        version,
        request_logger_url=MONITOR_EVENTS_URL,
        shadow_model=SHADOW_MODEL,
        tracking_uri=MLFLOW_URL,
    )
    # The chart's resource carries Helm's labels too; the spec is the deploy step's.
    assert as_manifest(build_inference_service(built))["spec"] == shadowing["spec"]
    env = {e["name"]: e.get("value") for e in shadowing["spec"]["predictor"]["containers"][0]["env"]}
    assert env["TEXTCLF_SERVE_SHADOW_EVENTS_URL"] == MONITOR_EVENTS_URL


def test_kind_maps_a_host_port_to_every_node_port_the_stack_opens() -> None:
    kind = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert [node["role"] for node in kind["nodes"]] == ["control-plane", "worker"]
    mapped = {m["containerPort"] for m in kind["nodes"][0]["extraPortMappings"]}
    node_ports = {
        port["nodePort"]
        for d in render_chart(KIND_VALUES)
        if d["kind"] == "Service" and d["spec"].get("type") == "NodePort"
        for port in d["spec"]["ports"]
    }
    kfp_ui = int(re.search(r"^KFP_UI_NODE_PORT \?= (\d+)$", (REPO / "Makefile").read_text(), re.M).group(1))
    assert mapped == node_ports | {kfp_ui}


def test_the_generator_writes_what_it_checks(tmp_path: Path) -> None:
    written = manifests.write_manifests(tmp_path)
    assert {str(p.relative_to(tmp_path)) for p in written} == set(manifests.generated_manifests())
    assert problems(load_manifests(tmp_path)) == []
