"""One drift check: the window of the served model version against that version's reference, an Evidently
report, the decision, and on "retrain" one retraining run per drift episode.

The monitoring service's schedule and its HTTP endpoint both call `DriftChecker.check`; so would a CronJob
through that endpoint. Everything here is plain Python over the store, so tests drive it without a server.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from textclf.config import MonitorConfig
from textclf.drift import DriftPolicy, DriftWindow, decide
from textclf.drift_report import (
    DriftReport,
    DriftReportSettings,
    build_drift_report,
    embed_reference,
    report_page,
    whole_word_vocabulary,
)
from textclf.metrics import label_quality
from textclf.monitor_store import MonitorStore
from textclf.predict import TextClassifier
from textclf.retraining import (
    LaunchedRun,
    episode_key,
    launch_local,
    launch_on_cluster,
    prepare_retraining_data,
)

log = logging.getLogger(__name__)

TABLE_SUFFIXES = {".csv", ".jsonl", ".json", ".parquet"}


@dataclass
class ReferenceModel:
    """A served version's model (for embeddings and its vocabulary) and reference sample, loaded once."""

    version: str
    classifier: TextClassifier
    reference: pd.DataFrame
    vocabulary: frozenset[str]
    reference_embeddings: pd.DataFrame
    embedding_max_tokens: int

    def embed(self, texts: list[str]) -> Any:
        return self.classifier.predict(texts, embeddings=True, max_length=self.embedding_max_tokens).embeddings

    def as_seen_by_model(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Texts cleaned as the model cleans them: the reference sample holds cleaned texts, so raw traffic
        would otherwise differ from it by what cleaning removes (markup, URLs, spacing), not by drift."""
        from textclf.cleaning import clean_texts

        return frame.assign(text=clean_texts(frame["text"].astype(str).tolist(), self.classifier.cleaning))


@dataclass
class CheckOutcome:
    check_id: int
    decision: dict[str, Any]
    report_name: str
    retraining: dict[str, Any] | None


def policy_of(config: MonitorConfig) -> DriftPolicy:
    return DriftPolicy(
        min_window_size=config.min_window_size,
        min_drifted_checks=config.min_drifted_checks,
        cooldown_seconds=config.cooldown_seconds,
        max_accuracy_drop=config.max_accuracy_drop,
        min_labelled=config.min_labelled,
        require_feedback=config.require_feedback,
    )


def report_settings_of(config: MonitorConfig) -> DriftReportSettings:
    return DriftReportSettings(
        descriptor_method=config.descriptor_method,
        descriptor_threshold=config.descriptor_threshold,
        label_method=config.label_method,
        label_threshold=config.label_threshold,
        score_method=config.score_method,
        score_threshold=config.score_threshold,
        embedding_threshold=config.embedding_threshold,
        embedding_sample=config.embedding_sample,
    )


def load_reference_model(
    directory: Path, version: str, settings: DriftReportSettings, embedding_max_tokens: int
) -> ReferenceModel:
    from textclf.model_dir import load_reference

    classifier = TextClassifier.load(directory)
    reference = load_reference(directory)
    model = ReferenceModel(
        version=version,
        classifier=classifier,
        reference=reference,
        vocabulary=whole_word_vocabulary(classifier.tokenizer.get_vocab()),
        reference_embeddings=pd.DataFrame(),
        embedding_max_tokens=embedding_max_tokens,
    )
    model.reference_embeddings = embed_reference(reference, model.embed, settings)
    return model


class DriftChecker:
    def __init__(self, config: MonitorConfig, store: MonitorStore, tracking_uri: str):
        self.config = config
        self.store = store
        self.tracking_uri = tracking_uri
        self.workdir = Path(config.workdir).resolve()
        self.reports_dir = self.workdir / "reports"
        self.settings = report_settings_of(config)
        self.policy = policy_of(config)
        self._models: OrderedDict[str, ReferenceModel] = OrderedDict()
        # One check at a time per process; racing processes are kept apart by the store's episode key.
        self._lock = threading.Lock()
        self._processes: dict[str, LaunchedRun] = {}

    # ---- references --------------------------------------------------------------------------------------

    def reference_for(self, model_version: str) -> ReferenceModel:
        if model_version in self._models:
            self._models.move_to_end(model_version)
            return self._models[model_version]
        from textclf.model_uri import resolve_model_dir

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
            model = load_reference_model(directory, model_version, self.settings, self.config.embedding_max_tokens)
        self._models[model_version] = model
        while len(self._models) > 2:
            self._models.popitem(last=False)
        return model

    # ---- the check ---------------------------------------------------------------------------------------

    def check(self, now: datetime | None = None) -> CheckOutcome:
        with self._lock:
            return self._check(now or datetime.now(UTC))

    def _check(self, now: datetime) -> CheckOutcome:
        self.refresh_runs()
        latest = self.store.latest_model_version(None)
        if latest is None:
            return self._record(now, decide([], DriftWindow(0, ""), self.policy).to_dict(), None)
        model_name, version = latest
        window = self.store.window(model_name, version, self.config.window_size)
        model = self.reference_for(version) if len(window) >= self.policy.min_window_size else None
        if model is not None:
            # Feedback naming no class of this model (a typo, a retired class) cannot be scored against it.
            window.loc[~window["feedback_label"].isin(model.classifier.labels), "feedback_label"] = None
        labelled = window[window["feedback_label"].notna()]
        live_accuracy = label_quality(labelled["feedback_label"].tolist(), labelled["predicted_label"].tolist())[
            "accuracy"
        ]
        drift_window = DriftWindow(
            size=len(window),
            model_version=version,
            start=window["time"].min().to_pydatetime() if len(window) else None,
            end=window["time"].max().to_pydatetime() if len(window) else None,
            labelled=len(labelled),
            live_accuracy=live_accuracy,
        )
        report = None
        scores = []
        reference_accuracy = None
        if model is not None:
            current = model.as_seen_by_model(
                window.rename(columns={"feedback_label": "label"})[["text", "predicted_label", "score", "label"]]
            )
            report = build_drift_report(
                model.reference,
                current,
                model.classifier.labels,
                model.vocabulary,
                model.embed,
                self.settings,
                model.reference_embeddings,
            )
            scores = report.checks
            if report.quality:
                reference_accuracy = report.quality["reference_accuracy"]
        runs_before, last_run = self.store.retraining_history(model_name, version)
        decision = decide(scores, drift_window, self.policy, reference_accuracy, last_run, now).to_dict()
        if report is not None and report.quality:
            decision["quality"] = report.quality
        outcome = self._record(now, decision, report)
        if decision["decision"] == "retrain" and self.config.retrain:
            outcome.retraining = self._start_retraining(episode_key(model_name, version, runs_before), outcome, now)
        return outcome

    def _record(self, now: datetime, decision: dict[str, Any], report: DriftReport | None) -> CheckOutcome:
        name = ""
        if report is not None:
            # Names sort by time (to the microsecond): retention keeps the newest.
            name = f"check-{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
            self.reports_dir.mkdir(parents=True, exist_ok=True)
            (self.reports_dir / f"{name}.html").write_text(report_page(f"textclf drift check {name}", decision, report))
            document = {**decision, "report": name, "evidently": report.snapshots}
            (self.reports_dir / f"{name}.json").write_text(json.dumps(document, default=str))
            self._prune_reports()
        check_id = self.store.add_check(
            now, decision["window"]["model_version"], decision["decision"], decision["reason"], decision, name
        )
        log.info("drift check %s: %s (%s)", check_id, decision["decision"], decision["reason"])
        return CheckOutcome(check_id, decision, name, None)

    def _prune_reports(self) -> None:
        """Keep the newest `report_retention` reports, and every report that started a retraining run."""
        triggers = {run["report_name"] for run in self.store.retraining_runs()}
        names = sorted({path.stem for path in self.reports_dir.glob("check-*.json")}, reverse=True)
        for name in names[self.config.report_retention :]:
            if name not in triggers:
                for suffix in (".html", ".json"):
                    (self.reports_dir / f"{name}{suffix}").unlink(missing_ok=True)

    # ---- retraining --------------------------------------------------------------------------------------

    def report_location(self, name: str) -> str:
        if self.config.public_url:
            return f"{self.config.public_url.rstrip('/')}/reports/{name}.html"
        return str(self.reports_dir / f"{name}.html")

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
            training_config = Path(self.config.training_config) if self.config.training_config else None
            if self.config.kfp_host:
                launched = launch_on_cluster(self.config.kfp_host, training_config, overrides)
            else:
                launched = launch_local(
                    training_config, Path(self.config.training_workdir), overrides, data_dir / "run.log"
                )
                self._processes[key] = launched
        except Exception as error:  # the claim stays, marked failed: no second run for this episode
            log.exception("retraining run for %s could not start", key)
            self.store.update_retraining(key, status="failed", detail=f"could not start: {error}")
            return {"episode_key": key, "started": False, "reason": f"could not start: {error}"}
        self.store.update_retraining(
            key, backend=launched.backend, run_id=launched.run_id, status="running", detail=launched.detail
        )
        log.info("retraining run %s started for %s (%s)", launched.run_id, key, data.rows)
        return {"episode_key": key, "started": True, "run_id": launched.run_id, "rows": data.rows}

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


def compare_datasets(
    reference: str,
    current: str,
    tracking_uri: str,
    model: str = "",
    config: MonitorConfig | None = None,
    report_dir: Path | None = None,
) -> dict[str, Any]:
    """`textclf drift`: the same check on any two datasets. `reference` is a CSV/JSONL/Parquet table or a
    model (`models:/NAME@ALIAS`, run or directory) whose reference sample is used; `current` a table with a
    `text` column (and `predicted_label`/`score`, else the model predicts them; `label` for quality)."""
    from textclf.data import DataValidationError, read_table
    from textclf.model_uri import resolve_model

    config = config or MonitorConfig()
    settings = report_settings_of(config)
    current_frame = read_table(current)
    reference_is_table = Path(reference.split("?", 1)[0]).suffix.lower() in TABLE_SUFFIXES
    model_reference = model or ("" if reference_is_table else reference)
    reference_model = None
    if model_reference:
        with tempfile.TemporaryDirectory() as scratch:
            resolved = resolve_model(model_reference, tracking_uri, Path(scratch))
            reference_model = load_reference_model(
                resolved.directory, resolved.version, settings, config.embedding_max_tokens
            )
    reference_frame = read_table(reference) if reference_is_table else reference_model.reference
    for name, frame in (("reference", reference_frame), ("current", current_frame)):
        if "text" not in frame.columns:
            raise DataValidationError(f"the {name} data has no 'text' column (columns: {', '.join(frame.columns)})")
    if reference_model is not None:
        for frame in (reference_frame, current_frame):
            if not {"predicted_label", "score"} <= set(frame.columns):
                predictions = reference_model.classifier.predict(frame["text"].astype(str).tolist())
                frame["predicted_label"], frame["score"] = predictions.labels, predictions.scores
        reference_frame = reference_model.as_seen_by_model(reference_frame)
        current_frame = reference_model.as_seen_by_model(current_frame)
        labels = list(reference_model.classifier.labels)
        vocabulary = reference_model.vocabulary
        embedder = reference_model.embed
    else:
        from textclf.modeling import PACKAGED_MINILM, load_tokenizer

        labels = sorted(set(reference_frame.get("label", pd.Series(dtype=str)).dropna().astype(str)))
        vocabulary = whole_word_vocabulary(load_tokenizer(PACKAGED_MINILM).get_vocab())
        embedder = None
    report = build_drift_report(reference_frame, current_frame, labels, vocabulary, embedder, settings)
    quality = report.quality
    window = DriftWindow(
        size=len(current_frame),
        model_version=reference_model.version if reference_model else "",
        labelled=quality["labelled"] if quality else 0,
        live_accuracy=quality["accuracy"] if quality else None,
    )
    decision = decide(
        report.checks, window, policy_of(config), quality["reference_accuracy"] if quality else None
    ).to_dict()
    if quality:
        decision["quality"] = quality
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "drift_report.html").write_text(report_page("textclf drift", decision, report))
        (report_dir / "drift_report.json").write_text(json.dumps({**decision, "evidently": report.snapshots}))
        decision["report"] = str(report_dir / "drift_report.html")
    return decision
