"""The stack's Kubernetes resources: `manifests/` is generated from `charts/textclf` (one source), and both are
checked offline here: Kubernetes schemas, the kserve SDK's InferenceService model, and the workload policy.

`python -m textclf.manifests` (`make manifests`) rewrites `manifests/`; a test fails when it is stale. Helm runs
through `helm-python-sdk` (Helm's Go SDK in a wheel, a dev dependency), so nothing here needs a helm binary."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from textclf.names import SERVING_NAMESPACE

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "textclf"
MANIFESTS = REPO / "manifests"
# The kind cluster's node image (Makefile KIND_NODE_IMAGE) is this Kubernetes minor.
KUBERNETES_VERSION = "1.33"
RELEASE_NAME = "textclf"
GENERATED_HEADER = "# Generated from charts/textclf by `make manifests`: edit the chart, then regenerate.\n"
HELM_ONLY_LABELS = ("app.kubernetes.io/managed-by", "helm.sh/chart")
HELM_ONLY_ANNOTATIONS = ("checksum/config",)

# The overlays: chart values on top of the defaults, and the example a pinned-model overlay starts from.
KIND_VALUES = {"nodePorts": {"enabled": True}}
PINNED_MODEL_VALUES = {
    "inferenceService": {"storageUri": "s3://mlpipeline/mlflow/1/models/m-example/artifacts", "modelVersion": "1"}
}


def render_chart(values: dict | None = None, namespace: str = SERVING_NAMESPACE) -> list[dict]:
    """Every resource the chart installs with these values (hooks included), as Helm renders them."""
    import helm_python

    chart = helm_python.Chart.load(CHART)
    try:
        rendered = chart.render(values, name=RELEASE_NAME, namespace=namespace, is_install=True)
    finally:
        chart.close()
    return [
        document
        for path, text in sorted(rendered.items())
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]


def is_hook(document: dict) -> bool:
    return "helm.sh/hook" in document["metadata"].get("annotations", {})


def key(document: dict) -> tuple[str, str]:
    return document["kind"], document["metadata"]["name"]


def _without_helm_metadata(document: dict) -> dict:
    plain = copy.deepcopy(document)
    for metadata in (plain["metadata"], plain.get("spec", {}).get("template", {}).get("metadata", {})):
        for field, names in (("labels", HELM_ONLY_LABELS), ("annotations", HELM_ONLY_ANNOTATIONS)):
            for name in names:
                metadata.get(field, {}).pop(name, None)
            if field in metadata and not metadata[field]:
                del metadata[field]
    return plain


def _file_name(document: dict) -> str:
    return f"{document['kind'].lower()}-{document['metadata']['name']}.yaml"


def _kustomization(resources: list[str], comment: str) -> str:
    body = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}
    return GENERATED_HEADER + comment + yaml.safe_dump(body, sort_keys=False)


def _dump(document: dict) -> str:
    return GENERATED_HEADER + yaml.safe_dump(document, sort_keys=False)


def generated_manifests() -> dict[str, str]:
    """`manifests/` as it should be: path (relative to it) → file text."""
    base = [_without_helm_metadata(d) for d in render_chart() if not is_hook(d)]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SERVING_NAMESPACE}}
    files = {"base/namespace.yaml": _dump(namespace)}
    files |= {f"base/{_file_name(d)}": _dump(d) for d in base}
    files["base/kustomization.yaml"] = _kustomization(
        sorted(path.removeprefix("base/") for path in files),
        "# The stack on any cluster with Kubeflow Pipelines and KServe: kubectl apply -k manifests/base\n",
    )
    base_keys = {key(d) for d in base}
    overlays = {
        "kind": (KIND_VALUES, "# base plus NodePort Services for kind-config.yaml's host ports\n"),
        "pinned-model": (
            PINNED_MODEL_VALUES,
            "# base plus the champion's InferenceService pinned to one registered version: set its STORAGE_URI\n"
            "# env and the textclf.io/model-version annotation (kustomize patches) to the version to serve.\n",
        ),
    }
    for overlay, (values, comment) in overlays.items():
        added = [_without_helm_metadata(d) for d in render_chart(values) if not is_hook(d) and key(d) not in base_keys]
        files |= {f"overlays/{overlay}/{_file_name(d)}": _dump(d) for d in added}
        files[f"overlays/{overlay}/kustomization.yaml"] = _kustomization(
            ["../../base", *sorted(_file_name(d) for d in added)], comment
        )
    return files


def load_manifests(directory: Path = MANIFESTS) -> list[dict]:
    """Every resource in the YAML files under `directory` (kustomization files excluded)."""
    return [
        document
        for path in sorted(directory.rglob("*.yaml"))
        if path.name != "kustomization.yaml"
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def write_manifests(directory: Path = MANIFESTS) -> list[Path]:
    for stale in directory.rglob("*.yaml"):
        stale.unlink()
    written = []
    for relative, text in generated_manifests().items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def pod_spec(document: dict) -> dict | None:
    """The pod template of a workload (InferenceService predictors included); None for other kinds."""
    kind = document["kind"]
    if kind == "Pod":
        return document["spec"]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return document["spec"]["template"]["spec"]
    if kind == "CronJob":
        return document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "InferenceService":
        return document["spec"]["predictor"]
    return None


def policy_violations(document: dict) -> list[str]:
    """What a workload lacks: non-root, no privilege escalation, read-only root, all capabilities dropped,
    requests and limits, and (for long-running servers, init containers aside) readiness and liveness probes."""
    spec = pod_spec(document)
    if spec is None:
        return []
    name = f"{document['kind']}/{document['metadata']['name']}"
    problems = []
    if not spec.get("securityContext", {}).get("runAsNonRoot"):
        problems.append(f"{name}: the pod must set securityContext.runAsNonRoot: true")
    long_running = document["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "InferenceService"}
    serving = [(container, True) for container in spec.get("containers", [])]
    # Init containers run to completion before the others start; Kubernetes refuses probes on them.
    for container, probed in serving + [(container, False) for container in spec.get("initContainers", [])]:
        where = f"{name} container {container.get('name')}"
        security = container.get("securityContext", {})
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: set securityContext.allowPrivilegeEscalation: false")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: set securityContext.readOnlyRootFilesystem: true")
        if security.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{where}: drop all capabilities (securityContext.capabilities.drop: [ALL])")
        if security.get("privileged"):
            problems.append(f"{where}: must not be privileged")
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(bound, {}))
            if missing:
                problems.append(f"{where}: resources.{bound} lacks {', '.join(sorted(missing))}")
        if long_running and probed:
            for probe in ("readinessProbe", "livenessProbe"):
                if not container.get(probe):
                    problems.append(f"{where}: needs a {probe}")
    return problems


def kubernetes_schema_errors(document: dict, kubernetes_version: str = KUBERNETES_VERSION) -> list[str]:
    """Schema problems of one of Kubernetes' own resources against the API schemas (strict: unknown fields
    fail). Custom resources (the InferenceService) are checked by their own SDK's models in the adapter that
    builds them (`textclf.serving.inference_service.manifest_problems`)."""
    import kubernetes_validate

    name = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(document, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {error.message} at {'.'.join(str(p) for p in error.path)}"]
    except kubernetes_validate.utils.SchemaNotFoundError as error:
        return [f"{name}: no schema for it ({error})"]
    return []


if __name__ == "__main__":
    for written in write_manifests():
        print(written.relative_to(REPO))
