"""The class names of a served model version, so feedback can be checked against them: a label that is no class
of the model would become training data no model can learn.

Read cheaply, never by loading the model: a registry version's `test_per_class_f1` tag (written at registration,
keyed by class name), or, for a version served from a model directory (`reference_model`), its `textclf.json`.
Each version is looked up once; one whose classes cannot be read (no registry, no tag) is tried again after
RETRY_SECONDS, and labels for it are not checked meanwhile."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from textclf.registry.gate import PER_CLASS_F1_TAG

log = logging.getLogger(__name__)

RETRY_SECONDS = 300.0


class ModelClasses:
    def __init__(self, registered_model_name: str, tracking_uri: str, reference_model: str = ""):
        self.registered_model_name = registered_model_name
        self.tracking_uri = tracking_uri
        self.reference_model = reference_model
        self._known: dict[str, tuple[tuple[str, ...] | None, float]] = {}
        self._lock = threading.Lock()

    def of(self, model_version: str) -> tuple[str, ...] | None:
        """The version's class names, or None when they cannot be read now."""
        with self._lock:
            known = self._known.get(model_version)
            if known is not None and (known[0] is not None or time.monotonic() - known[1] < RETRY_SECONDS):
                return known[0]
            try:
                classes = self._read(model_version)
            except Exception as error:  # the registry away, a version deleted: the label cannot be checked now
                log.info(
                    "classes of model version %s cannot be read (%r): its feedback is not checked", model_version, error
                )
                classes = None
            self._known[model_version] = (classes, time.monotonic())
            return classes

    def _read(self, model_version: str) -> tuple[str, ...] | None:
        if model_version.isdigit():
            if not _registry_exists(self.tracking_uri):
                return None
            from mlflow.tracking import MlflowClient

            client = MlflowClient(self.tracking_uri, self.tracking_uri)
            tags = client.get_model_version(self.registered_model_name, model_version).tags
            return tuple(json.loads(tags[PER_CLASS_F1_TAG])) if PER_CLASS_F1_TAG in tags else None
        from textclf.registry.model_dir import ModelDirectory

        directory = ModelDirectory(Path(self.reference_model))
        if self.reference_model and directory.is_model_directory():
            return tuple(directory.metadata().labels)
        return None


def _registry_exists(tracking_uri: str) -> bool:
    """False for a SQLite registry file that is not there (MLflow would create an empty one just to look)."""
    prefix = "sqlite:///"
    return not tracking_uri.startswith(prefix) or Path(tracking_uri.removeprefix(prefix)).is_file()
