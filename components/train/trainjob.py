"""The train step's distributed path in a cluster: a Kubeflow Trainer v2 TrainJob on the `torch-distributed`
ClusterTrainingRuntime runs `textclf.train.distributed` under torchrun on `workers` nodes, and the step waits.

Read at Kubeflow Trainer v2.3.0 (Makefile TRAINER_VERSION): the TrainJob API (pkg/apis/trainer/v1alpha1/
trainjob_types.go: spec.runtimeRef, spec.trainer.{image, command, env, numNodes, numProcPerNode,
resourcesPerNode}; status condition types "Complete" and "Failed"), the runtime (manifests/base/runtimes/
torch_distributed.yaml: ClusterTrainingRuntime `torch-distributed`, container `node`) and its torch plugin
(pkg/runtime/framework/plugins/torch/torch.go), which gives the trainer container PET_NNODES,
PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR and PET_MASTER_PORT: torchrun reads those as its defaults, so
the command names no rendezvous of its own. With CPU-only resources the plugin would start one process per CPU
("auto"); numProcPerNode 1 keeps one per node, each using the node's CPUs.

The nodes share nothing but MLflow: the step logs the job's input (the tokenized splits and the recipe) into the
pipeline's MLflow run, every rank downloads it, and rank 0 logs the trained model back there."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from textclf.names import COMPONENTS_IMAGE, STEP_RESOURCES, StepResources
from textclf.train.distributed import load_result, write_spec
from textclf.train.trainer import TrainingJob, TrainResult

TRAINER_GROUP = "trainer.kubeflow.org"
TRAINER_VERSION = "v1alpha1"
TRAINJOB_PLURAL = "trainjobs"
TORCH_RUNTIME = "torch-distributed"
ARTIFACT_ROOT = "distributed"


class TrainJobFailed(RuntimeError):
    """The TrainJob failed, or did not finish in time."""


class TrainJobApi(Protocol):
    def create(self, namespace: str, body: dict) -> dict: ...

    def get(self, namespace: str, name: str) -> dict: ...

    def delete(self, namespace: str, name: str) -> None: ...


class KubernetesTrainJobApi:
    """TrainJobs through the Kubernetes API, with the pod's ServiceAccount (the chart's Role allows it)."""

    def __init__(self) -> None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        self._custom = client.CustomObjectsApi()

    def create(self, namespace: str, body: dict) -> dict:
        return self._custom.create_namespaced_custom_object(
            TRAINER_GROUP, TRAINER_VERSION, namespace, TRAINJOB_PLURAL, body
        )

    def get(self, namespace: str, name: str) -> dict:
        return self._custom.get_namespaced_custom_object(
            TRAINER_GROUP, TRAINER_VERSION, namespace, TRAINJOB_PLURAL, name
        )

    def delete(self, namespace: str, name: str) -> None:
        self._custom.delete_namespaced_custom_object(TRAINER_GROUP, TRAINER_VERSION, namespace, TRAINJOB_PLURAL, name)


def build_trainjob(
    name: str,
    namespace: str,
    workers: int,
    tracking_uri: str,
    mlflow_run_id: str,
    artifact_path: str,
    image: str = COMPONENTS_IMAGE,
    resources: StepResources = STEP_RESOURCES["train"],
    timeout_seconds: int = 0,
) -> dict:
    """The TrainJob running `textclf.train.distributed` under torchrun on `workers` nodes, one process each."""
    requirements = {
        "requests": {"cpu": resources.cpu_request, "memory": resources.memory_request},
        "limits": {"cpu": resources.cpu_limit, "memory": resources.memory_limit},
    }
    spec: dict[str, Any] = {
        "runtimeRef": {"name": TORCH_RUNTIME, "apiGroup": TRAINER_GROUP, "kind": "ClusterTrainingRuntime"},
        "trainer": {
            "image": image,
            "command": [
                "torchrun",
                "-m",
                "textclf.train.distributed",
                "--mlflow-run",
                mlflow_run_id,
                "--artifact-path",
                artifact_path,
            ],
            "env": [{"name": "MLFLOW_TRACKING_URI", "value": tracking_uri}, {"name": "HOME", "value": "/tmp"}],
            "numNodes": workers,
            "numProcPerNode": 1,
            "resourcesPerNode": requirements,
        },
    }
    if timeout_seconds > 0:
        spec["activeDeadlineSeconds"] = timeout_seconds
    return {
        "apiVersion": f"{TRAINER_GROUP}/{TRAINER_VERSION}",
        "kind": "TrainJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "textclf", "app.kubernetes.io/component": "training"},
        },
        "spec": spec,
    }


def trainjob_outcome(trainjob: dict) -> tuple[str, str] | None:
    """("Complete" | "Failed", message) once the TrainJob has ended, else None."""
    for condition in trainjob.get("status", {}).get("conditions", []):
        if condition.get("type") in {"Complete", "Failed"} and condition.get("status") == "True":
            return condition["type"], f"{condition.get('reason', '')}: {condition.get('message', '')}".strip(": ")
    return None


def wait_for_trainjob(
    api: TrainJobApi,
    namespace: str,
    name: str,
    timeout_seconds: int,
    poll_seconds: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return when the TrainJob completed; raise `TrainJobFailed` with its reason when it failed, or when it ran
    past `timeout_seconds` (it is then deleted, with its pods)."""
    deadline = clock() + timeout_seconds
    while True:
        outcome = trainjob_outcome(api.get(namespace, name))
        if outcome is not None:
            state, message = outcome
            if state == "Complete":
                return
            raise TrainJobFailed(f"TrainJob {namespace}/{name} failed: {message}")
        if clock() >= deadline:
            api.delete(namespace, name)
            raise TrainJobFailed(f"TrainJob {namespace}/{name} did not finish within {timeout_seconds} s; deleted")
        sleep(poll_seconds)


def train_on_trainjob(
    job: TrainingJob,
    work_dir: Path,
    *,
    workers: int,
    namespace: str,
    tracking_uri: str,
    timeout_seconds: int,
    api: TrainJobApi | None = None,
) -> TrainResult:
    """`train_classifier`'s contract, run by a TrainJob of `workers` nodes; call it inside the pipeline's active
    MLflow run, which carries the job's input and output."""
    import mlflow

    run_id = mlflow.active_run().info.run_id
    name = f"textclf-train-{uuid.uuid4().hex[:8]}"
    artifact_path = f"{ARTIFACT_ROOT}/{name}"
    spec = write_spec(work_dir / "input", job)
    mlflow.log_artifacts(str(spec.parent), f"{artifact_path}/input")
    api = api or KubernetesTrainJobApi()
    api.create(namespace, build_trainjob(name, namespace, workers, tracking_uri, run_id, artifact_path))
    wait_for_trainjob(api, namespace, name, timeout_seconds)
    output = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"{artifact_path}/output")
    return load_result(Path(output))
