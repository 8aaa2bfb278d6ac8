"""The serving image, run as the chart runs the predictor (uid 1000, read-only root, no capabilities, no new
privileges, tmpfs /tmp) with a trained model directory mounted read-only at /mnt/models, as KServe's storage
initializer leaves it: v1, v2 REST and gRPC answer from the host; with no network at all it still becomes ready
(no Hub at run time); it holds no PyTorch and stays under 1 GB."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from tests.support.containers import answers, http_json, readable_copy, running_container, wait_until
from textclf.deploy.images import BuiltImage

pytestmark = [pytest.mark.container, pytest.mark.timeout(3600)]

MODEL = "textclf"
TEXTS = ["A warm, funny and beautifully acted film.", "Dull, long and badly written."]
SERVING_IMAGE_LIMIT_BYTES = 1_000_000_000
READY_SECONDS = 60
"""A generous bound for a shared 2-core machine; docs/deploying.md, "Images", gives the measured time."""

GRPC_CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tritonclient.grpc as grpc
    client = grpc.InferenceServerClient(url=sys.argv[1])
    tensor = grpc.InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in json.loads(sys.argv[2])], dtype=object))
    result = client.infer("textclf", [tensor])
    print(json.dumps({"ready": client.is_model_ready("textclf"),
                      "labels": [label.decode() for label in result.as_numpy("label")]}))
    """
)


@pytest.fixture(scope="module")
def model_dir(step_inputs: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained fixture model (with its ONNX exports), readable by uid 1000."""
    return readable_copy(step_inputs["model"], tmp_path_factory.mktemp("mounted"))


def labels_of(model_dir: Path) -> set[str]:
    return set(json.loads((model_dir / "textclf.json").read_text())["labels"])


def test_the_serving_image_answers_v1_v2_and_grpc_from_the_host(images: dict[str, str], model_dir: Path) -> None:
    mount = ["--volume", f"{model_dir}:/mnt/models:ro", "--publish", "127.0.0.1::8080", "--publish", "127.0.0.1::8081"]
    with running_container(images["serving"], options=mount) as container:
        http = f"http://{container.published(8080)}"
        wait_until(lambda: answers(f"{http}/v2/models/{MODEL}/ready"), READY_SECONDS, "ready", container.logs)
        v1 = http_json(f"{http}/v1/models/{MODEL}:predict", {"instances": TEXTS})
        v2 = http_json(
            f"{http}/v2/models/{MODEL}/infer",
            {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS}]},
        )
        with urllib.request.urlopen(f"{http}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        grpc = subprocess.run(
            [sys.executable, "-c", GRPC_CLIENT, container.published(8081), json.dumps(TEXTS)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    labels = labels_of(model_dir)
    assert {p["label"] for p in v1["predictions"]} <= labels and len(v1["predictions"]) == 2
    [label_output] = [o for o in v2["outputs"] if o["name"] == "label"]
    assert set(label_output["data"]) <= labels and label_output["shape"] == [2]
    answer = json.loads(grpc.stdout)
    assert answer["ready"] and set(answer["labels"]) <= labels
    # The image has no PyTorch: `auto` chose among the ONNX graphs the directory holds.
    assert re.search(r'textclf_model_info\{backend="onnx(-int8)?"', metrics), metrics


def test_the_serving_image_needs_no_network_and_no_pytorch(images: dict[str, str], model_dir: Path) -> None:
    ready = f"http://127.0.0.1:8080/v2/models/{MODEL}/ready"
    probe = ["python", "-c", f"import urllib.request; urllib.request.urlopen({ready!r}, timeout=2)"]
    options = ["--network", "none", "--volume", f"{model_dir}:/mnt/models:ro"]
    with running_container(images["serving"], options=options) as container:
        wait_until(lambda: container.exec(*probe).returncode == 0, READY_SECONDS, "ready offline", container.logs)
        torch = container.exec("python", "-c", "import importlib.util; print(importlib.util.find_spec('torch'))")
    assert torch.stdout.strip() == "None"


def test_the_serving_image_stays_under_its_size_limit(built_images: dict[str, BuiltImage]) -> None:
    assert built_images["serving"].size_bytes <= SERVING_IMAGE_LIMIT_BYTES, built_images["serving"]
