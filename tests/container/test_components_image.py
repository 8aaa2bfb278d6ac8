"""The components image runs pipeline steps as Kubeflow Pipelines' launcher starts them: the compiled pipeline's
own command and arguments for the step (`sh -ec ... python3 -m kfp.dsl.executor_main`), an executor input whose
artifact URIs are `minio://` paths the executor maps under /minio (where the launcher stages them; here a mounted
pipeline root), hardened as the chart runs its workloads and with no network at all. Ingest reads a small CSV,
preprocess reads ingest's splits; MLflow is a SQLite file in the pipeline root, the only state shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.containers import docker, readable_copy
from tests.support.data import REVIEWS_CSV
from textclf.config import PipelineConfig
from textclf.deploy.images import BuiltImage
from textclf.pipelines.runner import COMPILED_PIPELINE

pytestmark = [pytest.mark.container, pytest.mark.timeout(3600)]

COMPONENTS_IMAGE_LIMIT_BYTES = 2_000_000_000
PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts/textclf-training/container-test"
MOUNTED_ROOT = "/minio"
TRACKING_URI = f"sqlite:///{MOUNTED_ROOT}/mlflow.db"


def compiled() -> dict:
    return next(yaml.safe_load_all(COMPILED_PIPELINE.read_text()))


def executor_input(step: str, parameters: dict, inputs: dict[str, str]) -> dict:
    """What the launcher hands `step`: its parameters' values, each input artifact's URI, and where each output
    artifact and parameter goes, from the compiled component's definitions."""
    component = compiled()["components"][f"comp-{step}"]
    wanted = component["inputDefinitions"].get("parameters", {})
    missing = set(wanted) - set(parameters)
    assert not missing, f"no value for {step}'s parameters {sorted(missing)}"
    outputs = component.get("outputDefinitions", {})
    return {
        "inputs": {
            "parameterValues": {name: parameters[name] for name in wanted},
            "artifacts": {
                name: {"artifacts": [{"name": name, "uri": uri, "type": {"schemaTitle": "system.Dataset"}}]}
                for name, uri in inputs.items()
            },
        },
        "outputs": {
            "artifacts": {
                name: {
                    "artifacts": [
                        {
                            "name": name,
                            "type": definition["artifactType"],
                            "uri": f"{PIPELINE_ROOT}/{step}/{name}",
                            "metadata": {},
                        }
                    ]
                }
                for name, definition in outputs.get("artifacts", {}).items()
            },
            "parameters": {
                name: {"outputFile": f"{MOUNTED_ROOT}/outputs/{step}/{name}"} for name in outputs.get("parameters", {})
            },
            "outputFile": f"{MOUNTED_ROOT}/outputs/{step}/executor_output.json",
        },
    }


def run_step(image: str, step: str, parameters: dict, inputs: dict[str, str], root: Path, data: Path) -> dict:
    """The step in the components image as the launcher starts it; returns the executor's output."""
    from tests.support.containers import chart_run_options

    container = compiled()["deploymentSpec"]["executors"][f"exec-{step}"]["container"]
    assert container["image"].rsplit("/", 1)[-1] == image.rsplit("/", 1)[-1]
    payload = json.dumps(executor_input(step, parameters, inputs))
    arguments = [payload if argument == "{{$}}" else argument for argument in container["args"]]
    command = container["command"]
    result = docker(
        "run",
        "--rm",
        *chart_run_options(),
        "--network=none",
        f"--volume={root}:{MOUNTED_ROOT}",
        f"--volume={data}:/data:ro",
        f"--workdir={MOUNTED_ROOT}",
        f"--entrypoint={command[0]}",
        image,
        *command[1:],
        *arguments,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return json.loads((root / "outputs" / step / "executor_output.json").read_text())


def local(uri: str, root: Path) -> Path:
    return root / uri.removeprefix("minio://")


def test_ingest_and_preprocess_run_in_the_components_image_as_the_launcher_starts_them(
    images: dict[str, str], tmp_path: Path
) -> None:
    import pandas as pd

    root = tmp_path / "pipeline-root"
    root.mkdir()
    root.chmod(0o777)
    data = readable_copy(REVIEWS_CSV, tmp_path / "data").parent
    defaults = PipelineConfig().model_dump()
    common = {**defaults, "tracking_uri": TRACKING_URI}
    ingested = run_step(
        images["components"],
        "ingest",
        {
            **common,
            "data": f"/data/{REVIEWS_CSV.name}",
            "run_name": "container-test",
            "extra_train_data": "",
            "trigger": "",
        },
        {},
        root,
        data,
    )
    splits = {name: f"{PIPELINE_ROOT}/ingest/{name}" for name in ("train_split", "validation_split", "test_split")}
    sizes = ingested["parameterValues"]["split_sizes"]
    assert sum(sizes.values()) == len(pd.read_csv(REVIEWS_CSV))
    assert len(pd.read_parquet(local(splits["train_split"], root))) == sizes["train"]
    run_id = ingested["parameterValues"]["mlflow_run_id"]
    preprocessed = run_step(images["components"], "preprocess", {**common, "mlflow_run_id": run_id}, splits, root, data)
    train = pd.read_parquet(local(f"{PIPELINE_ROOT}/preprocess/train_data", root))
    assert len(train) == sizes["train"] and "input_ids" in train.columns
    assert json.loads(local(f"{PIPELINE_ROOT}/preprocess/preprocessing", root).read_text())["base_model"]
    # The executor reports each output artifact's metadata back to the launcher, which records it in ML Metadata.
    recorded = {name: found["artifacts"][0]["metadata"] for name, found in preprocessed["artifacts"].items()}
    assert recorded["train_data"]["rows"] == sizes["train"] and recorded["test_data"]["rows"] == sizes["test"]


def test_the_components_image_stays_under_its_size_limit(built_images: dict[str, BuiltImage]) -> None:
    assert built_images["components"].size_bytes <= COMPONENTS_IMAGE_LIMIT_BYTES, built_images["components"]
