"""Prometheus metrics of the monitoring service, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from textclf.monitor.decision import DECISIONS


class MonitorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "textclf_monitor_events", "request-logger events stored", ["kind"], registry=self.registry
        )
        self.duplicate_events = Counter(
            "textclf_monitor_duplicate_events", "events whose id and kind were already stored", registry=self.registry
        )
        self.malformed_events = Counter(
            "textclf_monitor_malformed_events", "events refused or not joinable", ["reason"], registry=self.registry
        )
        self.predictions = Counter("textclf_monitor_predictions", "prediction records stored", registry=self.registry)
        self.feedback = Counter("textclf_monitor_feedback", "feedback labels stored", registry=self.registry)
        self.checks = Counter("textclf_monitor_drift_checks", "drift checks run", ["decision"], registry=self.registry)
        for decision in DECISIONS:  # every decision is a series from the start, at 0 until it happens
            self.checks.labels(decision)
        self.drift_score = Gauge(
            "textclf_monitor_drift_score", "latest score of each drift check", ["check"], registry=self.registry
        )
        self.drift_threshold = Gauge(
            "textclf_monitor_drift_threshold", "threshold of each drift check", ["check"], registry=self.registry
        )
        self.retraining_runs = Counter(
            "textclf_monitor_retraining_runs_started", "retraining runs started", registry=self.registry
        )
        self.last_check = Gauge(
            "textclf_monitor_last_check_timestamp_seconds", "when the latest drift check ran", registry=self.registry
        )
        self.live_accuracy = Gauge(
            "textclf_monitor_live_accuracy", "accuracy on feedback in the latest checked window", registry=self.registry
        )
        self.estimated_accuracy = Gauge(
            "textclf_monitor_estimated_accuracy",
            "accuracy estimated without labels from the calibrated probabilities of the latest checked window",
            registry=self.registry,
        )
        self.estimated_accuracy_bound = Gauge(
            "textclf_monitor_estimated_accuracy_bound",
            "the estimated accuracy's interval (95 % by default)",
            ["bound"],
            registry=self.registry,
        )
        self.estimated_macro_f1 = Gauge(
            "textclf_monitor_estimated_macro_f1",
            "macro F1 estimated without labels in the latest checked window",
            registry=self.registry,
        )
