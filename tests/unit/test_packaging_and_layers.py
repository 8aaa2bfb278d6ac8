"""The package a user installs holds every component, and the layers contract holds: checked on the built wheel,
and shown to fail on a scratch copy with one deliberately wrong import."""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

import pytest

from tests.support.layers import REPOSITORY, build_wheel, lint_imports, scratch_copy, unpacked_wheel

pytestmark = pytest.mark.unit


def test_every_component_folder_and_data_file_is_in_the_built_wheel(tmp_path: Path) -> None:
    wheel = build_wheel(scratch_copy(tmp_path), tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    components = sorted(p.parent.name for p in (REPOSITORY / "components").glob("*/component.py"))
    assert components, "no component folders found"
    for component in components:
        assert f"textclf/components/{component}/component.py" in names, component
    for package in ("pipelines/training_pipeline.py", "pipelines/compiled/training_pipeline.yaml", "serving/model.py"):
        assert f"textclf/{package}" in names, package
    assert "textclf/monitoring/app.py" in names and "textclf/monitor/check.py" in names
    # The built-in behavioural suites are data files the evaluate step reads with importlib.resources.
    suites = sorted(p.name for p in (REPOSITORY / "src/textclf/evaluate/suites").glob("*.yaml"))
    assert suites and all(f"textclf/evaluate/suites/{suite}" in names for suite in suites)
    assert "textclf/evaluate/model_card.md.jinja" in names, "the model card's template ships with the package"
    migrations = sorted(p.name for p in (REPOSITORY / "src/textclf/monitor/migrations/versions").glob("0*.py"))
    assert migrations and all(f"textclf/monitor/migrations/versions/{name}" in names for name in migrations)
    assert "textclf/monitor/migrations/script.py.mako" in names


def test_the_layers_hold_and_a_wrong_import_breaks_them(tmp_path: Path) -> None:
    source = scratch_copy(tmp_path)
    kept = lint_imports(unpacked_wheel(source, tmp_path / "good"), source / "pyproject.toml")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    core_module = source / "src" / "textclf" / "monitor" / "decision.py"
    core_module.write_text(core_module.read_text() + "\nfrom textclf.serving import model  # deliberately wrong\n")
    broken = lint_imports(unpacked_wheel(source, tmp_path / "bad"), source / "pyproject.toml")
    assert broken.returncode != 0
    assert "textclf.monitor.decision -> textclf.serving" in broken.stdout


MODEL_DIRECTORY_OWNER = REPOSITORY / "src" / "textclf" / "registry" / "model_dir.py"
SHIPPED_CODE = ["src/textclf", "components", "pipelines", "serving", "monitoring"]


def places_naming_model_directory_files(roots: list[Path]) -> list[str]:
    """Where code outside `ModelDirectory` names one of the model directory's files, by constant or by literal
    (docstrings and comments, which only mention them, do not count)."""
    from textclf import names

    constants = {"MODEL_METADATA_FILE", "REFERENCE_SAMPLE_FILE", "ONNX_MODEL_FILE", "ONNX_INT8_MODEL_FILE"}
    literals = {getattr(names, constant) for constant in constants}
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if path in (MODEL_DIRECTORY_OWNER, Path(names.__file__)) or path.name.startswith("test_"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                named = (isinstance(node, ast.Name) and node.id in constants) or (
                    isinstance(node, ast.alias) and node.name in constants
                )
                if named or (isinstance(node, ast.Constant) and node.value in literals):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_only_the_model_directory_reads_and_writes_its_files(tmp_path: Path) -> None:
    """Training, evaluation, serving, the monitor and the MLflow model go through `ModelDirectory` (or the
    `TextClassifier` loaded from it); a module reading `textclf.json` itself fails here."""
    assert places_naming_model_directory_files([REPOSITORY / root for root in SHIPPED_CODE]) == []
    (tmp_path / "reader.py").write_text('import json\nlabels = json.loads(open("textclf.json").read())["labels"]\n')
    assert places_naming_model_directory_files([tmp_path]) == [f"{tmp_path.name}/reader.py:2"]
