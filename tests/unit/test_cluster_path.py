"""The cluster path against the upstream behaviour it relies on (docs/cluster.md cites each file): the charts
`make install-kserve` asks for, the ports KServe sends predictor traffic to, rollouts that read the Deployment
KServe manages rather than a status it copies from it, `textclf run --wait` failing on a failed run, the pipeline
spec the KFP API server parses, and the CPU the e2e's kind cluster can schedule."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from textclf.deploy.manifests import KIND_VALUES, PINNED_MODEL_VALUES, render_chart
from textclf.deploy.rollout import DeployError, ServingPlan
from textclf.names import MONITOR_EVENTS_URL, SERVING_NAMESPACE, STEP_RESOURCES

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
MAKEFILE = (REPO / "Makefile").read_text()

# KServe's Helm charts (kserve/kserve charts/<dir>/Chart.yaml `name`, v0.20.0 and master of 2026-08): the CRDs, and
# the controller with its resources, published as kserve-resources since v0.17.
KSERVE_CHARTS = {"kserve-crd", "kserve-resources"}
# kserve pkg/constants/constants.go: InferenceServiceDefaultAgentPort, the agent sidecar's port.
KSERVE_AGENT_PORT = 9081


def make_target(name: str) -> str:
    match = re.search(rf"^{re.escape(name)}:.*?\n((?:\t.*\n|\n)*)", MAKEFILE, re.M)
    assert match, f"no target {name} in the Makefile"
    return match.group(1)


def test_install_kserve_asks_for_the_charts_kserve_publishes() -> None:
    recipe = make_target("install-kserve")
    charts = re.findall(r"\$\(KSERVE_CHART_REPO\)/([\w-]+)", recipe)
    assert set(charts) == KSERVE_CHARTS, charts
    # The release names are the charts' own, as upstream's installer (hack/setup/common.sh) lists them.
    assert set(re.findall(r"upgrade --install ([\w-]+) \$\(KSERVE_CHART_REPO\)/\1", recipe)) == KSERVE_CHARTS
    assert "cert-manager.io/v1" in recipe and "--dry-run=server" in recipe, "wait for cert-manager's webhook"


def kserve_service_target_port(inference_service: dict) -> int:
    """The target port of the Service KServe makes for a Standard-mode predictor: the first container port,
    or the agent's when a logger or batcher is configured (service_reconciler.go, createDefaultSvc)."""
    predictor = inference_service["spec"]["predictor"]
    if predictor.get("logger") or predictor.get("batcher"):
        return KSERVE_AGENT_PORT
    return predictor["containers"][0]["ports"][0]["containerPort"]


def admitted_ports(documents: list[dict], pod_labels: dict[str, str]) -> set[int]:
    """Ports the NetworkPolicies selecting these pods admit from pods of their namespace or from the node."""
    ports = set()
    for policy in documents:
        if policy["kind"] != "NetworkPolicy":
            continue
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if selector.items() <= pod_labels.items():
            ports |= {port["port"] for rule in policy["spec"]["ingress"] for port in rule.get("ports", [])}
    return ports


def deploy_step_inference_service(plan: ServingPlan = ServingPlan()) -> dict:
    from textclf.serving.inference_service import InferenceServiceSettings, as_manifest, build_inference_service

    settings = InferenceServiceSettings(
        "textclf", SERVING_NAMESPACE, "s3://b/m", "1", request_logger_url=MONITOR_EVENTS_URL, plan=plan
    )
    return as_manifest(build_inference_service(settings))


@pytest.mark.parametrize("source", ["deploy step", "chart (pinned model)"])
def test_predictor_policies_and_node_port_admit_the_port_kserve_sends_traffic_to(source: str) -> None:
    documents = render_chart({**KIND_VALUES, **PINNED_MODEL_VALUES})
    if source == "deploy step":
        inference_service = deploy_step_inference_service()
    else:
        [inference_service] = [d for d in documents if d["kind"] == "InferenceService"]
    target = kserve_service_target_port(inference_service)
    assert target == KSERVE_AGENT_PORT, "the request logger is on, so KServe's Service goes to the agent"
    # KServe labels the predictor pods with the InferenceService's name (predictor.go).
    pod_labels = {"serving.kserve.io/inferenceservice": inference_service["metadata"]["name"]}
    assert target in admitted_ports(documents, pod_labels)
    [node_port] = [
        d for d in documents if d["metadata"]["name"] == "textclf-predictor-node-port" and d["kind"] == "Service"
    ]
    assert node_port["spec"]["selector"].items() <= pod_labels.items()
    # Requests from the host take the same path as in-cluster ones, through the logger.
    assert node_port["spec"]["ports"][0]["targetPort"] == target


# kserve pkg/constants/constants.go DefaultPodPrometheusPort: Knative's queue-proxy, absent from Standard-mode pods.
KNATIVE_QUEUE_PROXY_METRICS_PORT = 9091


def ports_admitted_from_namespace(documents: list[dict], pod_labels: dict[str, str], namespace: str) -> set[int]:
    """Ports the NetworkPolicies selecting these pods admit from pods of another namespace."""
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    return {
        port["port"]
        for policy in documents
        if policy["kind"] == "NetworkPolicy"
        and policy["spec"]["podSelector"].get("matchLabels", {}).items() <= pod_labels.items()
        for rule in policy["spec"]["ingress"]
        if peer in rule.get("from", [])
        for port in rule.get("ports", [])
    }


@pytest.mark.parametrize("source", ["deploy step", "chart (pinned model)"])
def test_keda_scales_on_metrics_prometheus_can_scrape(source: str) -> None:
    prometheus_url = "http://prometheus-server.monitoring.svc:80"
    keda = {"class": "keda", "keda": {"prometheusUrl": prometheus_url}}
    values = {"inferenceService": {**PINNED_MODEL_VALUES["inferenceService"], "autoscaling": keda}}
    documents = render_chart(values)
    if source == "deploy step":
        inference_service = deploy_step_inference_service(
            ServingPlan(autoscaler="keda", keda_prometheus_url=prometheus_url)
        )
    else:
        [inference_service] = [d for d in documents if d["kind"] == "InferenceService"]
    annotations = inference_service["metadata"]["annotations"]
    assert annotations["serving.kserve.io/autoscalerClass"] == "keda"
    # Left on, KServe's webhook would point Prometheus at the queue-proxy's port, which no Standard pod has.
    assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "false"
    scraped = int(annotations["prometheus.io/port"])
    assert scraped == inference_service["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"]
    assert scraped != KNATIVE_QUEUE_PROXY_METRICS_PORT and annotations["prometheus.io/path"] == "/metrics"
    [metric] = inference_service["spec"]["predictor"]["autoScaling"]["metrics"]
    assert metric["external"]["metric"]["serverAddress"] == prometheus_url
    pod_labels = {"serving.kserve.io/inferenceservice": inference_service["metadata"]["name"]}
    assert scraped in ports_admitted_from_namespace(documents, pod_labels, "monitoring")
    assert not ports_admitted_from_namespace(
        render_chart({**values, "inferenceService": {**values["inferenceService"], "prometheusNamespace": ""}}),
        pod_labels,
        "monitoring",
    )


class FakeCluster:
    """The API server, KServe's Standard-mode controller and the Deployment controller, in memory. KServe copies
    the Deployment's observedGeneration into the InferenceService status (inference_service_status.go), and the
    Deployment keeps its old pods Available during a rolling update, so the InferenceService stays Ready."""

    def __init__(self, new_pods_start: bool = True) -> None:
        self.new_pods_start = new_pods_start
        self.inference_service: dict | None = None
        self.deployment: dict | None = None
        self.replaced: list[dict] = []
        self.polls_until_rolled = 0

    def _store(self, body: dict, generation: int) -> dict:
        stored = copy.deepcopy(body)
        resource_version = (
            int(self.inference_service["metadata"]["resourceVersion"]) + 1 if self.inference_service else 1
        )
        stored["metadata"] |= {"generation": generation, "resourceVersion": str(resource_version)}
        stored["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        self.inference_service = stored
        template = {"spec": {"containers": copy.deepcopy(stored["spec"]["predictor"]["containers"])}}
        previous = self.deployment
        self.deployment = {
            "metadata": {"generation": (previous["metadata"]["generation"] + 1) if previous else 1},
            "spec": {"replicas": 1, "template": template},
            # The Deployment controller has not seen the new template yet; the old pod still serves.
            "status": copy.deepcopy(previous["status"]) if previous else {},
        }
        self.polls_until_rolled = 2
        return copy.deepcopy(stored)

    def get_inference_service(self, namespace: str, name: str) -> dict | None:
        return copy.deepcopy(self.inference_service)

    def create_inference_service(self, namespace: str, body: dict) -> dict:
        return self._store(body, 1)

    def replace_inference_service(self, namespace: str, name: str, body: dict) -> dict:
        assert body["metadata"]["resourceVersion"] == self.inference_service["metadata"]["resourceVersion"]
        self.replaced.append(copy.deepcopy(body))
        return self._store(body, self.inference_service["metadata"]["generation"] + 1)

    def get_deployment(self, namespace: str, name: str) -> dict | None:
        assert name == "textclf-predictor"
        self.polls_until_rolled -= 1
        generation = self.deployment["metadata"]["generation"]
        if self.polls_until_rolled <= 0:
            started = self.new_pods_start or generation == 1
            # maxUnavailable 0%: the old pod stays (and stays available) until the new one is available.
            self.deployment["status"] = {
                "observedGeneration": generation,
                "replicas": 1 if started else 2,
                "updatedReplicas": 1,
                "availableReplicas": 1,
            }
        return copy.deepcopy(self.deployment)


def roll(cluster: FakeCluster, storage_uri: str, version: str) -> str:
    from textclf.serving.inference_service import InferenceServiceSettings, roll_out

    settings = InferenceServiceSettings("textclf", SERVING_NAMESPACE, storage_uri, version)
    clock = iter(range(0, 10_000, 5))
    return roll_out(cluster, settings, timeout_seconds=60, clock=lambda: next(clock), sleep=lambda _: None)


def test_a_standard_rollout_waits_for_the_deployment_to_roll_out_the_new_version() -> None:
    cluster = FakeCluster()
    assert roll(cluster, "s3://m/1", "1").startswith("no InferenceService yet")
    outcome = roll(cluster, "s3://m/2", "2")
    assert "rolling update" in outcome and "canary" not in outcome
    assert cluster.deployment["status"]["updatedReplicas"] == 1


def test_a_rollout_whose_new_pods_never_become_available_restores_the_previous_spec() -> None:
    from textclf.serving.inference_service import serving_storage_uri

    cluster = FakeCluster(new_pods_start=False)
    roll(cluster, "s3://m/1", "1")
    previous_spec = copy.deepcopy(cluster.inference_service["spec"])
    # The InferenceService reads Ready throughout (the old pod is Available): only the Deployment tells.
    with pytest.raises(DeployError, match=r"within 60s: 1 of the previous version's replicas still run.*version 1"):
        roll(cluster, "s3://m/2", "2")
    assert cluster.replaced[-1]["spec"] == previous_spec
    assert serving_storage_uri(cluster.inference_service) == "s3://m/1"


class FakeRuns:
    """kfp.Client's run API: a run that ends FAILED (the kfp client's own wait returns it without raising)."""

    def __init__(self, states: list[str]) -> None:
        self.states = states

    def __call__(self, **_: object) -> FakeRuns:
        return self

    def create_run_from_pipeline_package(self, *_: object, **__: object) -> SimpleNamespace:
        return SimpleNamespace(run_id="run-1")

    def get_run(self, run_id: str) -> SimpleNamespace:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return SimpleNamespace(run_id=run_id, state=state, error=SimpleNamespace(message="train: OOMKilled"))

    def wait_for_run_completion(self, run_id: str, timeout: int) -> SimpleNamespace:
        return self.get_run(run_id)


@pytest.mark.parametrize("final", ["FAILED", "CANCELED", "SKIPPED"])
def test_wait_fails_on_any_final_state_but_succeeded(monkeypatch: pytest.MonkeyPatch, final: str) -> None:
    import kfp

    from textclf.config import PipelineConfig
    from textclf.pipelines import runner

    monkeypatch.setattr(kfp, "Client", FakeRuns(["PENDING", "RUNNING", final]))
    monkeypatch.setattr(runner, "compile_pipeline", lambda path: path)
    monkeypatch.setattr(runner.time, "sleep", lambda _: None)
    with pytest.raises(runner.PipelineRunFailed, match=f"run run-1 ended {final}"):
        runner.submit(PipelineConfig(), "http://kfp.invalid", "textclf", wait=True, timeout_seconds=60)


def test_run_wait_exits_non_zero_when_the_run_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import kfp
    from typer.testing import CliRunner

    from textclf.cli import app
    from textclf.pipelines import runner

    monkeypatch.setattr(kfp, "Client", FakeRuns(["RUNNING", "FAILED"]))
    monkeypatch.setattr(runner, "compile_pipeline", lambda path: path)
    monkeypatch.setattr(runner.time, "sleep", lambda _: None)
    result = CliRunner().invoke(app, ["run", "--host", "http://kfp.invalid", "--wait"])
    assert result.exit_code == 1, result.output
    assert "ended FAILED: train: OOMKilled" in result.output
    monkeypatch.setattr(kfp, "Client", FakeRuns(["SUCCEEDED"]))
    assert CliRunner().invoke(app, ["run", "--host", "http://kfp.invalid", "--wait"]).exit_code == 0


def test_the_committed_spec_is_compiled_by_the_pinned_kfp_and_parses_on_the_pinned_backend() -> None:
    import kfp

    spec, platform = yaml.safe_load_all((REPO / "pipelines" / "compiled" / "training_pipeline.yaml").read_text())
    pinned = re.search(r'"kfp==([\d.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert spec["sdkVersion"] == f"kfp-{pinned}" == f"kfp-{kfp.__version__}"
    # The API server of KFP_VERSION parses the spec with protojson.Unmarshal (backend/src/apiserver/template/
    # template.go): an unknown field fails the upload. `make install` places that version's pipeline-spec beside
    # the venv; a fresh interpreter loads it (this one already holds the SDK's, under the same proto file name).
    backend_spec = re.search(r"^KFP_BACKEND_PIPELINE_SPEC \?= ([\d.]+)$", MAKEFILE, re.M).group(1)
    target = Path(sys.prefix) / "kfp-backend-pipeline-spec"
    module = target / "kfp" / "pipeline_spec" / "pipeline_spec_pb2.py"
    assert (target / f"kfp_pipeline_spec-{backend_spec}.dist-info").exists() and module.exists(), (
        "run `make install`: it installs the backend's pipeline-spec"
    )
    parse = (
        "import importlib.util, json, sys\n"
        "from google.protobuf import json_format\n"
        f"loader = importlib.util.spec_from_file_location('backend_pipeline_spec_pb2', {str(module)!r})\n"
        "backend = importlib.util.module_from_spec(loader)\n"
        "loader.loader.exec_module(backend)\n"
        "json_format.ParseDict(json.load(sys.stdin), backend.PipelineSpec())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", parse], input=json.dumps(spec), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # The Kubernetes platform spec is parsed as strictly, against KFP_VERSION's kubernetes_executor_config.proto:
    # its SecretAsVolume has these fields at 2.14.3 (SecretAsEnv has no `optional` there, hence a volume).
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-plan-tuning", "exec-tune-trials", "exec-tune"}
    for config in executors.values():
        assert set(config) == {"secretAsVolume"}
        for volume in config["secretAsVolume"]:
            assert set(volume) <= {"secretName", "mountPath", "optional", "secretNameParameter"}


# CPU requests of what runs beside the stack on the e2e's kind cluster, read off the pinned upstream manifests
# (docs/cluster.md, "CPU on a 4-CPU runner"): Kubernetes' own pods on kind v1.33 (apiserver 250m, controller
# manager 200m, scheduler 100m, etcd 100m, CoreDNS 2 x 100m, kindnet 100m per node), KFP 2.14.3 platform-agnostic
# (sum of its Deployments' requests), KServe's controller (100m + its RBAC proxy 100m), metrics-server (100m),
# cert-manager (none), and KServe's agent sidecar beside each predictor (logger cpuRequest 100m).
UPSTREAM_CPU = {"kubernetes": 1.05, "kubeflow pipelines": 0.83, "kserve": 0.2, "metrics-server": 0.1, "agent": 0.1}
RUNNER_CPUS = 4


def cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_the_e2e_fits_a_four_cpu_runner_with_room() -> None:
    kind = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    schedulable = [node for node in kind["nodes"] if node["role"] == "worker"]
    if re.search(
        r"taint nodes \$\(CLUSTER_NAME\)-control-plane node-role.kubernetes.io/control-plane:NoSchedule-", MAKEFILE
    ):
        schedulable += [node for node in kind["nodes"] if node["role"] == "control-plane"]
    # Every kind node is a container on the runner and offers all of its CPUs.
    capacity = RUNNER_CPUS * len(schedulable)
    stack = [
        cpu(container["resources"]["requests"]["cpu"])
        # `make deploy` turns the chart's PostgreSQL on.
        for document in render_chart({**KIND_VALUES, **PINNED_MODEL_VALUES, "postgresql": {"enabled": True}})
        if document["kind"] in {"Deployment", "StatefulSet", "InferenceService"}
        for container in (
            document["spec"]["predictor"]
            if document["kind"] == "InferenceService"
            else document["spec"]["template"]["spec"]
        )["containers"]
    ]
    largest_step = max(cpu(resources.cpu_request) for resources in STEP_RESOURCES.values())
    # After tuning, cross-validate and train run at once, both sized as training (training_pipeline.py).
    busiest_moment = max(largest_step, 2 * cpu(STEP_RESOURCES["train"].cpu_request))
    requested = sum(UPSTREAM_CPU.values()) + sum(stack) + busiest_moment
    assert requested <= 0.75 * capacity, f"{requested:.2f} CPUs requested of {capacity} schedulable"
    # On a 2-CPU runner a step must still fit on the worker beside kindnet and CoreDNS (300m).
    assert largest_step <= 2 - 0.3
