"""The committed pipeline spec is what the code compiles to, and it has the shape a cluster needs."""

from pathlib import Path

import pytest
import yaml

from textclf.names import COMPONENTS_IMAGE, STEP_RESOURCES
from textclf.pipelines.runner import COMPILED_PIPELINE, compile_pipeline

pytestmark = pytest.mark.unit


def test_committed_spec_is_fresh(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "pipeline.yaml").read_text()
    assert COMPILED_PIPELINE.read_text() == fresh, "pipelines/compiled is stale: run `make compile` and commit it"


def test_each_component_readme_is_fresh_and_describes_every_argument() -> None:
    from textclf.components.readme import folders, readme

    for folder in folders():
        path = folder / "README.md"
        assert path.exists() and path.read_text() == readme(folder), f"{path} is stale: run `make compile`"
    spec, _platform = yaml.safe_load_all(COMPILED_PIPELINE.read_text())
    inputs = [spec["root"]["inputDefinitions"]] + [
        component["inputDefinitions"] for component in spec["components"].values() if "inputDefinitions" in component
    ]
    undescribed = [
        name
        for definitions in inputs
        for kind in ("parameters", "artifacts")
        for name, item in definitions.get(kind, {}).items()
        if not item.get("description") and not name.startswith("pipelinechannel--")
    ]
    assert undescribed == [], "every input reaches the KFP UI with its description"


def test_spec_wires_every_step_with_typed_artifacts_images_and_resources() -> None:
    spec, _platform = yaml.safe_load_all(COMPILED_PIPELINE.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {
        "ingest",
        "preprocess",
        "plan-tuning",
        "for-loop-2",
        "tune",
        "cross-validate",
        "train",
        "evaluate",
        "register",
        "promotion-gate",
        "condition-1",
        "condition-3",
    }
    conditions = {
        task["taskInfo"]["name"]: task["triggerPolicy"]["condition"]
        for task in tasks.values()
        if "triggerPolicy" in task
    }
    assert "promotion-gate" in conditions["challenger-beats-champion"]
    assert "== true" in conditions["challenger-beats-champion"]
    # A run the drift monitor starts carries the report that started it, as an HTML artifact.
    assert "drift_report'] != ''" in conditions["started-by-drift"]
    # The model card shows cross-validation: evaluate reads the cross-validate step's artifact.
    evaluate_inputs = tasks["evaluate"]["inputs"]["artifacts"]
    assert evaluate_inputs["cross_validation"]["taskOutputArtifact"]["producerTask"] == "cross-validate"
    assert "tune" in tasks["cross-validate"]["dependentTasks"], "it cross-validates the tuned recipe"
    # Tuning workers: one loop iteration (a pod) per index plan-tuning returns; the best recipe waits for them all.
    loop = tasks["for-loop-2"]
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--plan-tuning-Output"}
    assert list(spec["components"]["comp-for-loop-2"]["dag"]["tasks"]) == ["tune-trials"]
    assert "for-loop-2" in tasks["tune"]["dependentTasks"]
    assert "train" not in tasks["cross-validate"]["dependentTasks"], "beside training, not after it"
    # ingest opens the MLflow run; a cached ingest would hand out an earlier run's id.
    assert tasks["ingest"]["cachingOptions"] == {}
    assert tasks["preprocess"]["cachingOptions"] == {"enableCache": True}
    artifact_types = {
        name: artifact["artifactType"]["schemaTitle"]
        for component in spec["components"].values()
        for name, artifact in component.get("outputDefinitions", {}).get("artifacts", {}).items()
    }
    assert artifact_types["train_split"] == "system.Dataset"
    assert artifact_types["data_report"] == "system.Markdown"
    assert artifact_types["model"] == "system.Model"
    assert artifact_types["metrics"] == "system.Metrics"
    assert artifact_types["confusion_matrix"] == "system.ClassificationMetrics"
    assert artifact_types["optimization_history"] == "system.HTML"
    assert artifact_types["report"] == "system.HTML"
    executors = spec["deploymentSpec"]["executors"]
    assert {executor["container"]["image"] for executor in executors.values()} == {COMPONENTS_IMAGE}
    train = executors["exec-train"]["container"]["resources"]
    assert train["resourceCpuLimit"] == STEP_RESOURCES["train"].cpu_limit
    assert train["resourceMemoryRequest"] == STEP_RESOURCES["train"].memory_request
