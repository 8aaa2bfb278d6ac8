"""The Helm chart, rendered and linted offline through Helm's own Go SDK (the `helm-python-sdk` wheel bundles
it): it lints clean, every rendered resource validates against the Kubernetes schemas, its values schema
refuses bad values, and it renders the same resources as `manifests/` (they must not drift apart)."""

from __future__ import annotations

import copy
from pathlib import Path

import helm_python
import kubernetes_validate
import pytest
import yaml

from textclf import __version__
from textclf.names import IMAGE_REGISTRY, MONITOR_IMAGE

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "textclf"
MANIFESTS = REPO / "manifests" / "monitoring"
NAMESPACE = "textclf"
KUBERNETES_VERSION = "1.31"


def render(values: dict | None = None) -> list[dict]:
    chart = helm_python.Chart.load(CHART)
    try:
        rendered = chart.render(values, name="textclf", namespace=NAMESPACE, is_install=True)
    finally:
        chart.close()
    return [
        document
        for path, text in rendered.items()
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]


def without_chart_metadata(document: dict) -> dict:
    """A resource as the raw manifests have it: no Helm labels, no config checksum annotation."""
    stripped = copy.deepcopy(document)
    stripped["metadata"].pop("labels", None)
    template = stripped.get("spec", {}).get("template", {}).get("metadata", {})
    template.get("annotations", {}).pop("checksum/config", None)
    if template.get("annotations") == {}:
        del template["annotations"]
    return stripped


def test_the_chart_lints_clean() -> None:
    report = helm_python.lint(CHART, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]


def test_every_rendered_resource_validates_against_the_kubernetes_schema() -> None:
    documents = render()
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        assert document["metadata"]["namespace"] == NAMESPACE


def test_chart_and_manifests_render_the_same_resources() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    manifests = [
        document
        for name in kustomization["resources"]
        for document in yaml.safe_load_all((MANIFESTS / name).read_text())
        if document
    ]
    rendered = {(d["kind"], d["metadata"]["name"]): without_chart_metadata(d) for d in render()}
    raw = {(d["kind"], d["metadata"]["name"]): without_chart_metadata(d) for d in manifests}
    assert set(rendered) == set(raw)
    for key, document in raw.items():
        assert rendered[key] == document, key


def test_image_defaults_come_from_names_py() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["registry"] == IMAGE_REGISTRY
    assert values["image"]["tag"] == __version__
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"] == __version__
    images = {
        container["image"]
        for document in render()
        if document["kind"] in {"Deployment", "CronJob"}
        for container in (
            document["spec"]["template"]["spec"]["containers"]
            if document["kind"] == "Deployment"
            else document["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        )
    }
    assert images == {MONITOR_IMAGE}


@pytest.mark.parametrize(
    "values",
    [
        {"monitor": {"windowSize": "lots"}},
        {"monitor": {"resources": {"requests": {"cpu": "one core"}}}},
        {"image": {"pullPolicy": "Sometimes"}},
        {"monitor": {"unknownSetting": True}},
    ],
)
def test_the_values_schema_refuses_bad_values(values: dict) -> None:
    with pytest.raises(helm_python.HelmValuesError):
        render(values)


def test_the_monitor_can_be_left_out() -> None:
    assert render({"monitor": {"enabled": False}}) == []
