"""Names and images: the one place the pipeline, the deploy step, the manifests and the chart read.

The "names and images" contract (docs/architecture.md): component, image and registered-model names come
from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from textclf import __version__

IMAGE_REGISTRY = os.environ.get("TEXTCLF_IMAGE_REGISTRY", "ghcr.io/textclf")
IMAGE_TAG = os.environ.get("TEXTCLF_IMAGE_TAG", __version__)

COMPONENTS_IMAGE = f"{IMAGE_REGISTRY}/textclf-components:{IMAGE_TAG}"
SERVING_IMAGE = f"{IMAGE_REGISTRY}/textclf-serving:{IMAGE_TAG}"
MONITOR_IMAGE = f"{IMAGE_REGISTRY}/textclf-monitor:{IMAGE_TAG}"

PIPELINE_NAME = "textclf-training"
REGISTERED_MODEL_NAME = "textclf"
EXPERIMENT_NAME = "textclf"
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"

SERVING_NAMESPACE = "textclf"
INFERENCE_SERVICE_NAME = REGISTERED_MODEL_NAME
MONITOR_SERVICE_NAME = "textclf-monitor"
MONITOR_PORT = 8000
MONITOR_EVENTS_PORT = 8001
"""The monitor's port for KServe's request logger alone: POST /events without a token (KServe's agent cannot
send one); on a cluster the NetworkPolicy admits only the predictor pods to it."""
# Where KServe's request logger sends CloudEvents: the monitoring service inside the cluster.
MONITOR_URL = f"http://{MONITOR_SERVICE_NAME}.{SERVING_NAMESPACE}.svc.cluster.local:{MONITOR_PORT}"
MONITOR_EVENTS_URL = f"http://{MONITOR_SERVICE_NAME}.{SERVING_NAMESPACE}.svc.cluster.local:{MONITOR_EVENTS_PORT}/events"
DRIFT_CHECK_CRONJOB_NAME = "textclf-drift-check"

# The MLflow tracking server the stack runs in its namespace; it proxies artifacts into the object store
# Kubeflow Pipelines installs (its MinIO service), so clients only ever speak HTTP to MLflow.
MLFLOW_SERVICE_NAME = "mlflow"
MLFLOW_PORT = 5000
MLFLOW_URL = f"http://{MLFLOW_SERVICE_NAME}.{SERVING_NAMESPACE}.svc.cluster.local:{MLFLOW_PORT}"
ARTIFACT_STORE_URI = "s3://mlpipeline/mlflow"
OBJECT_STORE_ENDPOINT = "minio-service.kubeflow.svc.cluster.local:9000"
# Created by the user (never committed): AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of the object store.
OBJECT_STORE_SECRET = "textclf-object-store"
PREDICTOR_SERVICE_ACCOUNT = "textclf-predictor"
AUTH_SECRET = "textclf-auth"
"""The Secret holding the bearer tokens: write-token, feedback-token (the monitor), admin-token (the predictor)."""
# Kubeflow Pipelines (standalone) runs every step as this ServiceAccount in its own namespace.
PIPELINE_NAMESPACE = "kubeflow"
PIPELINE_SERVICE_ACCOUNT = "pipeline-runner"
# The tuning steps' shared Optuna study: a Secret in the pipeline namespace (the chart writes it when it runs
# PostgreSQL) whose `url` key is an RDB URL every step reaches, mounted into the tuning pods as a file.
OPTUNA_STORAGE_SECRET = "textclf-optuna-storage"
OPTUNA_STORAGE_MOUNT = "/var/run/secrets/textclf/optuna"
# Local servers (textclf serve, textclf monitor) listen here unless told otherwise.
LOCAL_HOST = "127.0.0.1"
LOCAL_SERVING_URL = f"http://{LOCAL_HOST}:8080"
LOCAL_MONITOR_URL = f"http://{LOCAL_HOST}:{MONITOR_PORT}"
UI_PORT = 8090
"""`textclf ui`: the browser UI's port (beside the predictor's 8080 and the monitor's 8000)."""

MODEL_METADATA_FILE = "textclf.json"
REFERENCE_SAMPLE_FILE = "reference.parquet"


@dataclass(frozen=True)
class StepResources:
    """Kubernetes requests and limits for one pipeline step (KFP accepts requests and limits)."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


# Requests are what a step needs to make progress, limits what it may burst to: on the e2e's kind cluster
# (docs/cluster.md, "CPU on a 4-CPU runner") KFP, KServe and this stack share 4 CPUs, and a training step that
# requested its limit could never be scheduled there.
STEP_RESOURCES: dict[str, StepResources] = {
    "ingest": StepResources("500m", "1", "1Gi", "4Gi"),
    "preprocess": StepResources("1", "2", "2Gi", "4Gi"),
    "tune": StepResources("1", "4", "4Gi", "8Gi"),
    "train": StepResources("1", "4", "4Gi", "8Gi"),
    "evaluate": StepResources("1", "2", "2Gi", "6Gi"),
    "register": StepResources("250m", "1", "512Mi", "2Gi"),
    "promote": StepResources("100m", "500m", "256Mi", "1Gi"),
    "deploy": StepResources("100m", "500m", "256Mi", "1Gi"),
}

# Requests and limits of one predictor replica (the InferenceService's container).
SERVING_RESOURCES = StepResources("500m", "2", "1Gi", "2Gi")
# The monitor holds one model for embeddings and runs Evidently over a window.
MONITOR_RESOURCES = StepResources("500m", "2", "1Gi", "3Gi")
MLFLOW_RESOURCES = StepResources("250m", "1", "512Mi", "2Gi")
# The chart's optional PostgreSQL (MLflow's backend store, the monitor's store, the Optuna study), the image
# docker-compose.yml runs too.
POSTGRESQL_RESOURCES = StepResources("100m", "1", "256Mi", "1Gi")
POSTGRESQL_IMAGE = "postgres:17.6-bookworm"

# What `make images` builds: image → its target in the repository's Dockerfile, in the Dockerfile's order.
IMAGE_TARGETS = {
    SERVING_IMAGE: "serving",
    MONITOR_IMAGE: "monitor",
    COMPONENTS_IMAGE: "components",
}
# The images' base (the Dockerfile's BASE_IMAGE default), and the equivalent `make images` builds from Debian's
# packages where that one cannot be pulled (src/textclf/deploy/images.py).
PYTHON_BASE_IMAGE = "python:3.11-slim-bookworm"
LOCAL_BASE_IMAGE = "textclf-python-base:3.11-bookworm"
# PyTorch's CPU wheels (the Dockerfile's TORCH_INDEX_URL default): PyPI's torch is the multi-GB CUDA build.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

if __name__ == "__main__":
    for image, target in IMAGE_TARGETS.items():
        print(image, target)
ONNX_MODEL_FILE = "model.onnx"
"""The model as an ONNX Runtime graph, fp32, with ONNX Runtime's transformer fusions (runs on ONNX Runtime only)."""
ONNX_INT8_MODEL_FILE = "model.int8.onnx"
"""The same graph with its weights dynamically quantized to int8."""
