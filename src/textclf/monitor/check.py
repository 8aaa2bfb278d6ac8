"""One drift check: the window of the served model version against that version's reference, an Evidently
report, the decision, and on "retrain" one retraining run per drift episode.

The monitoring service's schedule and its HTTP endpoint both call `DriftChecker.check`; so does a CronJob
through that endpoint. `textclf.monitor.compare` (`textclf drift`) judges any two datasets the same way. Everything
here is plain Python over the store, so tests drive it without a server.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from textclf.monitor.classes import ModelClasses
from textclf.monitor.decision import DriftPolicy, DriftWindow, decide, json_safe
from textclf.monitor.descriptors import whole_word_vocabulary
from textclf.monitor.estimate import PerformanceEstimate, estimate_performance
from textclf.monitor.groups import EmbeddedSide, explain_drift
from textclf.monitor.labelling import QueueSettings, rank_for_labelling
from textclf.monitor.quality import live_quality
from textclf.monitor.report import DriftReport, DriftReportSettings, build_drift_report, embed_reference
from textclf.monitor.report_files import ReportArchive, ReportRetention
from textclf.monitor.retraining import (
    ClusterLauncher,
    LaunchedRun,
    episode_key,
    launch_local,
    prepare_retraining_data,
)
from textclf.monitor.store import MonitorStore
from textclf.serve.classifier import TextClassifier

log = logging.getLogger(__name__)

CHECK_REPORT_PREFIX = "check-"
DRIFT_FOUND = frozenset({"drift", "retrain"})
"""Decisions whose check explains the drift by groups of texts (`textclf.monitor.groups`)."""


@dataclass
class ReferenceModel:
    """A served version's model (for embeddings and its vocabulary) and reference sample, loaded once."""

    version: str
    classifier: TextClassifier
    reference: pd.DataFrame
    vocabulary: frozenset[str]
    reference_embeddings: pd.DataFrame
    embedding_max_tokens: int

    @property
    def accuracy(self) -> float:
        """The served model's accuracy on its reference sample (the validation split)."""
        return float((self.reference["label"] == self.reference["predicted_label"]).mean())

    @property
    def calibration_error(self) -> float:
        """The calibrated scores' ECE on the validation split: how far an estimate from them may be off in-domain
        (0 for a model directory written before it was recorded)."""
        return float(self.classifier.metadata.metrics.get("validation_ece_calibrated") or 0.0)

    def probabilities(self, window: pd.DataFrame) -> np.ndarray:
        """The window's class probabilities (texts x classes, in this model's label order). A prediction logged
        without them (its client asked for the label and score only) has its score on its label and the rest
        shared evenly by the other classes: its expected correctness, all accuracy needs, is the score itself."""
        labels = self.classifier.labels
        rows = np.empty((len(window), len(labels)))
        for position, (given, score, logged) in enumerate(
            zip(window["predicted_label"], window["score"], window["probabilities"], strict=True)
        ):
            if len(logged) == len(labels):
                rows[position] = logged
            else:
                rows[position] = (1.0 - score) / max(len(labels) - 1, 1)
                rows[position, labels.index(given) if given in labels else 0] = score
        return rows

    def estimate(self, window: pd.DataFrame) -> PerformanceEstimate | None:
        """The window's estimated performance (`estimate_performance`); None for an empty window."""
        if not len(window):
            return None
        return estimate_performance(self.probabilities(window), self.classifier.labels, self.calibration_error)

    def drift_groups(self, report: DriftReport, window: pd.DataFrame, seed: int) -> list[dict[str, Any]]:
        """The drifted window's groups of texts against the reference's (`explain_drift`), from the texts the
        report's embedding check embedded; none when it embedded none."""
        if set(report.embedded) != {"reference", "current"}:
            return []
        reference_positions, reference_vectors = report.embedded["reference"]
        window_positions, window_vectors = report.embedded["current"]
        sample = window.iloc[window_positions]
        groups = explain_drift(
            EmbeddedSide(self.reference["text"].iloc[reference_positions].tolist(), reference_vectors),
            EmbeddedSide(sample["text"].astype(str).tolist(), window_vectors),
            self.probabilities(sample),
            self.classifier.labels,
            sample["predicted_label"].tolist(),
            [label if label in self.classifier.labels else None for label in sample["feedback_label"]],
            seed=seed,
        )
        return json_safe(groups)

    def embed(self, texts: list[str]) -> Any:
        return self.classifier.predict(texts, embeddings=True, max_length=self.embedding_max_tokens).embeddings

    def as_seen_by_model(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Texts cleaned as the model cleans them: the reference sample holds cleaned texts, so raw traffic
        would otherwise differ from it by what cleaning removes (markup, URLs, spacing), not by drift."""
        from textclf.data.cleaning import clean_texts

        return frame.assign(text=clean_texts(frame["text"].astype(str).tolist(), self.classifier.cleaning))

    def report(self, reference: pd.DataFrame, current: pd.DataFrame, settings: DriftReportSettings) -> DriftReport:
        """The drift report of `current` against `reference`, both seen as this model sees them."""
        return build_drift_report(
            reference,
            self.as_seen_by_model(current),
            self.classifier.labels,
            self.vocabulary,
            self.embed,
            settings,
            self.reference_embeddings if reference is self.reference else None,
        )


@dataclass
class CheckOutcome:
    check_id: int
    decision: dict[str, Any]
    report_name: str
    retraining: dict[str, Any] | None


def load_reference_model(directory: Path, version: str, settings: DriftReportSettings) -> ReferenceModel:
    from textclf.registry.model_dir import ModelDirectory

    classifier = TextClassifier.load(directory)
    reference = ModelDirectory(directory).reference()
    model = ReferenceModel(
        version=version,
        classifier=classifier,
        reference=reference,
        vocabulary=whole_word_vocabulary(classifier.tokenizer.get_vocab()),
        reference_embeddings=pd.DataFrame(),
        embedding_max_tokens=settings.embedding_max_tokens,
    )
    model.reference_embeddings = embed_reference(reference, model.embed, settings)
    return model


def judge(
    report: DriftReport | None,
    window: DriftWindow,
    policy: DriftPolicy,
    last_retraining_at: datetime | None = None,
    now: datetime | None = None,
    reference_accuracy: float | None = None,
    estimate: PerformanceEstimate | None = None,
) -> dict[str, Any]:
    """The drift decision (contract "drift decision") for a report over a window, with the feedback quality and
    the estimated performance. The reference's accuracy is the report's where it has feedback quality."""
    scores = report.checks if report is not None else []
    if report is not None and report.quality:
        reference_accuracy = report.quality["reference_accuracy"]
    decision = decide(scores, window, policy, reference_accuracy, last_retraining_at, now).to_dict()
    if report is not None and report.quality:
        decision["quality"] = report.quality
    if estimate is not None:
        decision["estimate"] = json_safe(estimate.to_dict())
    return decision


class CheckerConfig(Protocol):
    """What a DriftChecker reads of the monitor's configuration (`textclf.config.MonitorConfig` is one): declared
    here so that the checker does not depend on the configuration module, which depends on the monitor's settings."""

    workdir: str
    report: DriftReportSettings
    policy: DriftPolicy
    queue: QueueSettings
    registered_model_name: str
    reference_model: str
    window_size: int
    record_retention_days: float
    report_retention_bytes: int
    report_retention_days: float
    triggering_report_retention_bytes: int
    public_url: str
    retrain: bool
    kfp_host: str
    training_config: str
    training_workdir: str
    new_data_dir: str
    holdout_fraction: float


class DriftChecker:
    """Checks the store's latest window; starts retraining runs locally (`textclf run` in a process of its own)
    or, with `kfp_host`, through `launch_on_cluster` (the composition root passes the KFP launcher)."""

    def __init__(
        self,
        config: CheckerConfig,
        store: MonitorStore,
        tracking_uri: str,
        launch_on_cluster: ClusterLauncher | None = None,
    ):
        self.config = config
        self.store = store
        self.tracking_uri = tracking_uri
        self.launch_on_cluster = launch_on_cluster
        self.workdir = Path(config.workdir).resolve()
        self.reports = ReportArchive(self.workdir / "reports")
        self.retention = ReportRetention(
            max_bytes=config.report_retention_bytes,
            max_age_days=config.report_retention_days,
            max_triggering_bytes=config.triggering_report_retention_bytes,
        )
        self.settings = config.report
        self.policy = config.policy
        self._models: OrderedDict[str, ReferenceModel] = OrderedDict()
        self.classes = ModelClasses(config.registered_model_name, tracking_uri, config.reference_model)
        # One check at a time per process; racing processes are kept apart by the store's episode key.
        self._lock = threading.Lock()
        self._processes: dict[str, LaunchedRun] = {}

    @property
    def reports_dir(self) -> Path:
        return self.reports.directory

    def unknown_labels(self, labels: list[tuple[str, int, str]]) -> list[str]:
        """Which feedback labels (request id, index, label) are no class of the version that made their prediction
        (for one not logged yet: of the version served latest). Versions whose classes cannot be read now are not
        checked (`ModelClasses`)."""
        keys = [(request_id, index) for request_id, index, _ in labels]
        versions = self.store.prediction_versions(keys)
        latest = self.store.latest_model_version(None) if len(versions) < len(set(keys)) else None
        problems = []
        for number, (request_id, index, label) in enumerate(labels):
            version = versions.get((request_id, index)) or (latest[1] if latest else "")
            classes = self.classes.of(version) if version else None
            if classes is not None and label not in classes:
                problems.append(f"item {number}: {label[:60]!r} is no class of model version {version} {list(classes)}")
        return problems

    # ---- references --------------------------------------------------------------------------------------

    def reference_for(self, model_version: str) -> ReferenceModel:
        if model_version in self._models:
            self._models.move_to_end(model_version)
            return self._models[model_version]
        from textclf.registry.model_uri import resolve_model_dir

        if model_version.isdigit():
            reference = f"models:/{self.config.registered_model_name}/{model_version}"
        elif self.config.reference_model:
            reference = self.config.reference_model
        else:
            raise LookupError(
                f"model version {model_version!r} is not a registry version; set reference_model to the model "
                "directory or models:/ URI it was served from"
            )
        with tempfile.TemporaryDirectory() as scratch:
            directory = resolve_model_dir(reference, self.tracking_uri, Path(scratch))
            model = load_reference_model(directory, model_version, self.settings)
        self._models[model_version] = model
        while len(self._models) > 2:
            self._models.popitem(last=False)
        return model

    def judged_model(self, version: str, window_size: int) -> ReferenceModel | None:
        """The reference model a window of this size is judged by; None below `min_window_size` (no report)."""
        return self.reference_for(version) if window_size >= self.policy.min_window_size else None

    def window_quality(self, window: pd.DataFrame, model: ReferenceModel | None) -> dict[str, Any]:
        """Live accuracy of a window's feedback, as the check computes it and `GET /quality` reports it."""
        return live_quality(window, model.classifier.labels if model is not None else None)

    # ---- the labelling queue -----------------------------------------------------------------------------

    def labelling_queue(self, count: int) -> dict[str, Any]:
        """The `count` unlabelled texts of the latest window most worth labelling (`rank_for_labelling`), best
        first, each with the request it came from, so its label goes back as feedback for that prediction."""
        latest = self.store.latest_model_version(None)
        if latest is None:
            return {"model_name": None, "model_version": None, "classes": [], "unlabelled": 0, "items": []}
        window = self.store.window(*latest, self.config.window_size)
        unlabelled = window[window["feedback_label"].isna()].reset_index(drop=True)
        answer: dict[str, Any] = {"model_name": latest[0], "model_version": latest[1], "unlabelled": len(unlabelled)}
        if not len(unlabelled):
            return answer | {"classes": [], "items": []}
        texts = unlabelled["text"].astype(str).tolist()
        with self._lock:  # the model's one user at a time, as a check is
            model = self.reference_for(latest[1])
            vectors = model.embed(model.as_seen_by_model(unlabelled)["text"].tolist())
        probabilities = model.probabilities(unlabelled)
        ranked = rank_for_labelling(
            probabilities, vectors, model.reference_embeddings.to_numpy(), count, self.config.queue, texts
        )
        labels = list(model.classifier.labels)
        items = [
            {
                "request_id": unlabelled["request_id"].iloc[item.position],
                "index": int(unlabelled["index"].iloc[item.position]),
                "text": texts[item.position],
                "predicted_label": unlabelled["predicted_label"].iloc[item.position],
                "probabilities": dict(zip(labels, probabilities[item.position].round(4).tolist(), strict=True)),
                "value": round(item.value, 4),
                "uncertainty": round(item.uncertainty, 4),
                "novelty": round(item.novelty, 4),
                "redundancy": round(item.redundancy, 4),
            }
            for item in ranked
        ]
        return answer | {"classes": labels, "items": items}

    # ---- the check ---------------------------------------------------------------------------------------

    def check(self, now: datetime | None = None) -> CheckOutcome:
        with self._lock:
            return self._check(now or datetime.now(UTC))

    def _check(self, now: datetime) -> CheckOutcome:
        self.refresh_runs()
        removed = self.store.prune(now - timedelta(days=self.config.record_retention_days))
        trimmed = self.store.enforce_bounds()
        if any(removed.values()) or any(trimmed.values()):
            log.info("retention: deleted %s by age, %s past the store's bounds", removed, trimmed)
        latest = self.store.latest_model_version(None)
        if latest is None:
            return self._record(now, judge(None, DriftWindow(0, ""), self.policy), None)
        model_name, version = latest
        window = self.store.window(model_name, version, self.config.window_size)
        model = self.judged_model(version, len(window))
        quality = self.window_quality(window, model)
        estimate = model.estimate(window) if model is not None else None
        drift_window = DriftWindow(
            size=len(window),
            model_version=version,
            start=window["time"].min().to_pydatetime() if len(window) else None,
            end=window["time"].max().to_pydatetime() if len(window) else None,
            labelled=quality["labelled"],
            live_accuracy=quality["accuracy"],
            estimated_accuracy=estimate.accuracy if estimate is not None else None,
        )
        report = None
        if model is not None:
            current = window.rename(columns={"feedback_label": "label"})[["text", "predicted_label", "score", "label"]]
            report = model.report(model.reference, current, self.settings)
        runs_before, last_run = self.store.retraining_history(model_name, version)
        reference_accuracy = model.accuracy if model is not None else None
        decision = judge(report, drift_window, self.policy, last_run, now, reference_accuracy, estimate)
        if report is not None and decision["decision"] in DRIFT_FOUND:
            decision["groups"] = model.drift_groups(report, window, self.settings.seed)
        outcome = self._record(now, decision, report)
        if outcome.decision["decision"] == "retrain" and self.config.retrain:
            outcome.retraining = self._start_retraining(episode_key(model_name, version, runs_before), outcome, now)
        return outcome

    def _record(self, now: datetime, decision: dict[str, Any], report: DriftReport | None) -> CheckOutcome:
        name = ""
        if report is not None:
            # Names sort by time (to the microsecond): retention keeps the newest.
            name = f"{CHECK_REPORT_PREFIX}{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
            self.reports.write(name, f"textclf drift check {name}", {**decision, "report": name}, report)
            triggers = {run["report_name"] for run in self.store.retraining_runs()}
            self.reports.prune(CHECK_REPORT_PREFIX, self.retention, triggers, now)
        check_id = self.store.add_check(
            now, decision["window"]["model_version"], decision["decision"], decision["reason"], decision, name
        )
        log.info("drift check %s: %s (%s)", check_id, decision["decision"], decision["reason"])
        return CheckOutcome(check_id, decision, name, None)

    # ---- retraining --------------------------------------------------------------------------------------

    def report_location(self, name: str) -> str:
        if self.config.public_url:
            return f"{self.config.public_url.rstrip('/')}/reports/{name}.html"
        return str(self.reports.html_path(name))

    def _start_retraining(self, key: str, outcome: CheckOutcome, now: datetime) -> dict[str, Any]:
        if not self.store.claim_retraining(key, now, outcome.check_id, outcome.decision["reason"], outcome.report_name):
            return {"episode_key": key, "started": False, "reason": "another check already started this episode"}
        safe = key.replace("/", "_")
        data_dir = self.workdir / "retraining" / safe
        try:
            data = prepare_retraining_data(
                self.store.labelled(),
                Path(self.config.new_data_dir) if self.config.new_data_dir else None,
                data_dir,
                self.config.holdout_fraction,
                self.reference_for(outcome.decision["window"]["model_version"]).classifier.labels,
            )
            overrides = {
                "extra_train_data": self._data_location(safe, data.extra_train) if data.rows["extra_train"] else "",
                "drift_window_data": self._data_location(safe, data.drift_window) if data.rows["drift_window"] else "",
                "drift_report": self.report_location(outcome.report_name),
                "trigger": key,
            }
            launched = self._launch(overrides, data_dir / "run.log")
        except Exception as error:  # the claim stays, marked failed: no second run for this episode
            log.exception("retraining run for %s could not start", key)
            self.store.update_retraining(key, status="failed", detail=f"could not start: {error}")
            return {"episode_key": key, "started": False, "reason": f"could not start: {error}"}
        if launched.process is not None:
            self._processes[key] = launched
        self.store.update_retraining(
            key, backend=launched.backend, run_id=launched.run_id, status="running", detail=launched.detail
        )
        log.info("retraining run %s started for %s (%s)", launched.run_id, key, data.rows)
        return {"episode_key": key, "started": True, "run_id": launched.run_id, "rows": data.rows}

    def _launch(self, overrides: dict[str, Any], log_path: Path) -> LaunchedRun:
        training_config = Path(self.config.training_config) if self.config.training_config else None
        if not self.config.kfp_host:
            return launch_local(training_config, Path(self.config.training_workdir), overrides, log_path)
        if self.launch_on_cluster is None:
            raise RuntimeError("kfp_host is set, but this checker was built without a Kubeflow Pipelines launcher")
        return self.launch_on_cluster(self.config.kfp_host, training_config, overrides)

    def _data_location(self, episode_dir: str, path: Path) -> str:
        if self.config.public_url:
            return f"{self.config.public_url.rstrip('/')}/retraining/{episode_dir}/{path.name}"
        return str(path)

    def refresh_runs(self) -> None:
        """Record how the local runs this process started have ended."""
        for key, launched in list(self._processes.items()):
            code = launched.process.poll() if launched.process else None
            if code is None:
                continue
            self.store.update_retraining(key, status="succeeded" if code == 0 else "failed")
            del self._processes[key]
