"""Every default is stated once: no two settings classes state the same default for the same field."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPOSITORY = Path(__file__).resolve().parents[2]
SOURCES = ["src/textclf", "components", "pipelines", "serving", "monitoring"]
# "" and None mean "not set" (a location resolved at run time), not a tunable default.
UNSET = ("", None)


def literal_default(value: ast.expr | None) -> tuple[bool, object]:
    """(True, value) when a field's default is written as a literal here, directly or as Field(literal, ...)."""
    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Field" and value.args:
        value = value.args[0]
    try:
        return True, ast.literal_eval(value) if value is not None else None
    except ValueError:
        return False, None


def stated_defaults(roots: list[Path]) -> dict[tuple[str, str], list[str]]:
    """(field, repr(default)) → the classes that state that literal default."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for root in roots:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ClassDef):
                    continue
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None:
                        is_literal, value = literal_default(item.value)
                        if is_literal and value not in UNSET:
                            found[(item.target.id, repr(value))].append(f"{path.name}:{node.name}")
    return found


def test_no_two_settings_classes_state_the_same_default() -> None:
    repeated = {
        key: owners for key, owners in stated_defaults([REPOSITORY / s for s in SOURCES]).items() if len(owners) > 1
    }
    assert repeated == {}, f"defaults stated in more than one place (declare once, reference it): {repeated}"


def test_the_check_finds_a_repeated_default(tmp_path: Path) -> None:
    (tmp_path / "settings.py").write_text(
        "class A:\n    batch_size: int = Field(32, ge=1)\n\nclass B:\n    batch_size: int = 32\n    name: str = ''\n"
    )
    assert stated_defaults([tmp_path]) == {("batch_size", "32"): ["settings.py:A", "settings.py:B"]}


def test_the_pipeline_configuration_nests_the_stages_own_settings() -> None:
    from textclf.config import MonitorConfig, PipelineConfig
    from textclf.data.cleaning import CleaningConfig
    from textclf.deploy.rollout import ServingPlan
    from textclf.monitor.decision import DriftPolicy
    from textclf.monitor.report import DriftReportSettings
    from textclf.registry.gate import PromotionPolicy
    from textclf.train.trainer import TrainingParams, TrainingRecipe

    groups = PipelineConfig.groups()
    assert groups["training"] is TrainingRecipe and groups["cleaning"] is CleaningConfig
    assert groups["promotion"] is PromotionPolicy and issubclass(groups["serving"], ServingPlan)
    config = PipelineConfig()
    assert TrainingParams.of(config.training.model_dump(), config.seed) == TrainingParams()
    assert config.serving.plan() == ServingPlan()
    assert MonitorConfig().policy == DriftPolicy() and MonitorConfig().report == DriftReportSettings()
