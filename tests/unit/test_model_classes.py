"""Feedback labels are checked against the classes of the model version that made the prediction (issue 33: a
label that was no class of the model was stored), read from the registry version's tags or a model directory's
textclf.json, never by loading the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textclf.monitor.classes import ModelClasses
from textclf.registry.gate import PER_CLASS_F1_TAG

pytestmark = pytest.mark.unit


def test_a_registry_versions_classes_come_from_its_tags(local_tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(local_tracking_uri, local_tracking_uri)
    client.create_registered_model("textclf")
    version = client.create_model_version("textclf", source="file:///nowhere").version
    client.set_model_version_tag("textclf", version, PER_CLASS_F1_TAG, json.dumps({"negative": 0.9, "positive": 0.8}))
    untagged = client.create_model_version("textclf", source="file:///nowhere").version
    classes = ModelClasses("textclf", local_tracking_uri)
    assert classes.of(str(version)) == ("negative", "positive")
    assert classes.of(str(untagged)) is None
    assert classes.of("99") is None  # no such version: not checked, and not an error


def test_a_directory_versions_classes_come_from_its_metadata(tmp_path: Path) -> None:
    from textclf.registry.model_dir import ModelDirectory, ModelMetadata

    metadata = ModelMetadata("bert", "full", 32, ["sports", "world"], {}, {}, {}, "fingerprint")
    ModelDirectory(tmp_path).write_metadata(metadata)
    assert ModelClasses("textclf", "sqlite:///unused.db", str(tmp_path)).of("sha256-abc") == ("sports", "world")
    assert ModelClasses("textclf", "sqlite:///unused.db", "").of("sha256-abc") is None
    missing = tmp_path / "no-registry" / "mlflow.db"
    assert ModelClasses("textclf", f"sqlite:///{missing}").of("3") is None
    assert not missing.parent.exists(), "looking must not create a registry"
