"""The Helm chart, rendered and linted offline through Helm's own Go SDK (the `helm-python-sdk` wheel bundles
it): it lints clean, its values schema refuses bad values, its defaults come from names.py, its parts can be
switched off, and its `helm test` hook sends a v2 request to the predictor (the schema and policy checks of
every rendered resource are in test_manifests.py)."""

from __future__ import annotations

import json
import re

import helm_python
import pytest
import yaml

from textclf import __version__
from textclf.deploy.manifests import CHART, is_hook, render_chart
from textclf.names import (
    IMAGE_REGISTRY,
    MLFLOW_RESOURCES,
    MONITOR_RESOURCES,
    OPTUNA_STORAGE_SECRET,
    PIPELINE_NAMESPACE,
    POSTGRESQL_IMAGE,
    POSTGRESQL_RESOURCES,
    SERVING_IMAGE,
    SERVING_RESOURCES,
)

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
    assert VALUES["postgresql"]["image"] == POSTGRESQL_IMAGE
    for values, resources in (
        (VALUES["monitor"], MONITOR_RESOURCES),
        (VALUES["mlflow"], MLFLOW_RESOURCES),
        (VALUES["inferenceService"], SERVING_RESOURCES),
        (VALUES["postgresql"], POSTGRESQL_RESOURCES),
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


def is_monitor_settings(resource: dict) -> bool:
    return resource["kind"] == "ConfigMap" and resource["metadata"]["name"] == "textclf-monitor"


def test_parts_can_be_left_out() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in render_chart({"monitor": {"enabled": False}})}
    assert not {name for _, name in kinds if "monitor" in name or "drift" in name}
    assert ("Deployment", "mlflow") in kinds
    without_mlflow = render_chart({"mlflow": {"enabled": False, "url": "http://mlflow.example:5000"}})
    assert "mlflow" not in {d["metadata"]["name"] for d in without_mlflow}
    (config,) = [d for d in without_mlflow if is_monitor_settings(d)]
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


def test_postgresql_backs_mlflow_the_monitor_and_the_tuning_study() -> None:
    """With postgresql.enabled: MLflow's backend store (migrated by an init container before a server starts, so
    it may run several replicas), the monitor's store, and an `optuna` database the pipeline's namespace reaches;
    every client takes the password from the Secret, never from a URL in the chart."""
    import re

    documents = render_chart({"postgresql": {"enabled": True}, "mlflow": {"replicas": 2}})
    by_key = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    assert ("PersistentVolumeClaim", "mlflow-store") not in by_key
    database = by_key[("StatefulSet", "textclf-postgresql")]
    assert database["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert "CREATE DATABASE optuna;" in by_key[("ConfigMap", "textclf-postgresql-initdb")]["data"]["databases.sql"]
    mlflow = by_key[("Deployment", "mlflow")]
    assert mlflow["spec"]["replicas"] == 2
    pod = mlflow["spec"]["template"]["spec"]
    (migrate,) = pod["initContainers"]
    store = "postgresql+psycopg2://textclf@textclf-postgresql.textclf.svc.cluster.local:5432/mlflow"
    assert migrate["command"] == ["mlflow", "db", "upgrade", store]
    assert f"--backend-store-uri={store}" in pod["containers"][0]["args"]
    monitor = by_key[("Deployment", "textclf-monitor")]["spec"]["template"]["spec"]["containers"][0]
    for container in (migrate, pod["containers"][0], monitor):
        (password,) = [env for env in container["env"] if env["name"] == "PGPASSWORD"]
        assert password["valueFrom"]["secretKeyRef"] == {"name": "textclf-postgresql", "key": "password"}
    (url,) = [env for env in monitor["env"] if env["name"] == "TEXTCLF_MONITOR_DATABASE_URL"]
    assert url["value"].endswith("/monitor") and ":" not in url["value"].split("@")[0].split("//")[1]
    ingress = by_key[("NetworkPolicy", "textclf-postgresql")]["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": PIPELINE_NAMESPACE}}} in ingress
    # `make deploy` writes the Secret the tuning steps mount, in the pipeline namespace, pointing at `optuna`.
    makefile = (CHART.parents[1] / "Makefile").read_text()
    assert re.search(rf"^PIPELINE_NAMESPACE \?= {PIPELINE_NAMESPACE}$", makefile, re.M)
    assert f"create secret generic {OPTUNA_STORAGE_SECRET}" in makefile and "5432/optuna" in makefile
    assert "--set postgresql.enabled=true" in makefile


def test_several_mlflow_servers_need_postgresql() -> None:
    with pytest.raises(Exception, match=r"needs postgresql\.enabled"):
        render_chart({"mlflow": {"replicas": 2}})


def test_the_store_bounds_set_in_the_chart_reach_the_monitors_settings() -> None:
    """Every bound the chart offers names a MonitorConfig field (TEXTCLF_MONITOR_<FIELD>), and unset ones leave
    textclf's defaults in force."""
    from textclf.config import MonitorConfig

    schema = json.loads((CHART / "values.schema.json").read_text())
    offered = schema["properties"]["monitor"]["properties"]["storeBounds"]["properties"]
    bounds = {name: 5_000 + index for index, name in enumerate(offered)}
    (config,) = [d for d in render_chart({"monitor": {"storeBounds": bounds}}) if is_monitor_settings(d)]
    settings = {
        key.removeprefix("TEXTCLF_MONITOR_").lower(): value
        for key, value in config["data"].items()
        if key.startswith("TEXTCLF_MONITOR_MAX_STORED_")
    }
    assert len(settings) == len(offered)
    stored = MonitorConfig(**settings).store_bounds()
    assert sorted(vars(stored).values()) == sorted(bounds.values())
    (default,) = [d for d in render_chart() if is_monitor_settings(d)]
    assert not [key for key in default["data"] if key.startswith("TEXTCLF_MONITOR_MAX_STORED_")]


def exported_metric_names() -> set[str]:
    """Every series name the predictor (its metrics and its request logger's) and the monitor export, as
    Prometheus exposes them (counters with `_total`, histograms with `_bucket`, `_sum`, `_count`)."""
    from prometheus_client import CollectorRegistry

    from textclf.monitoring.prometheus import MonitorMetrics
    from textclf.serving.prometheus import ServingMetrics
    from textclf.serving.request_logger import RequestLogger

    registries = [CollectorRegistry(), CollectorRegistry(), MonitorMetrics().registry]
    ServingMetrics.create(registries[0])
    RequestLogger("http://127.0.0.1:9/events", "textclf", registry=registries[1])
    names = set()
    for registry in registries:
        for family in registry.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
            names |= {family.name + suffix for suffix in suffixes}
    return names


def test_the_grafana_dashboard_is_a_sidecar_configmap_whose_every_query_names_an_exported_metric() -> None:
    (config,) = [d for d in render_chart() if d["metadata"]["name"] == "textclf-grafana-dashboard"]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["textclf.json"])
    assert dashboard["uid"] == "textclf" and dashboard["templating"]["list"][0]["query"] == "prometheus"
    exported = exported_metric_names()
    queried = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            queried |= set(re.findall(r"\btextclf_[a-z0-9_]+", target["expr"]))
    assert queried and queried <= exported, queried - exported
    assert {"textclf_monitor_estimated_accuracy", "textclf_predictions_total", "textclf_monitor_drift_score"} <= queried
    positions = [(panel["gridPos"]["x"], panel["gridPos"]["y"]) for panel in dashboard["panels"]]
    assert len(set(positions)) == len(positions), "two panels drawn on the same spot"
    elsewhere = render_chart({"grafanaDashboard": {"namespace": "monitoring", "labelValue": ""}})
    (moved,) = [d for d in elsewhere if d["metadata"]["name"] == "textclf-grafana-dashboard"]
    assert moved["metadata"]["namespace"] == "monitoring" and moved["metadata"]["labels"]["grafana_dashboard"] == ""
    off = render_chart({"grafanaDashboard": {"enabled": False}})
    assert "textclf-grafana-dashboard" not in {d["metadata"]["name"] for d in off}
