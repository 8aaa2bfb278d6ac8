"""A recorded monitor history: hours of logged exchanges (with known latencies) and drift checks (with known scores
and estimates), written straight into a monitor store, for the dashboard's tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from tests.support.events import binary_cloud_event, v2_exchange
from textclf.monitor.events import parse_event
from textclf.monitor.store import MonitorStore

HOURS_AGO = (20, 14, 8, 3)
"""When each recorded hour happened, before `now`: every one in a bucket of its own on a 24-hour, 48-bucket chart."""
EXCHANGES = (3, 5, 2, 4)
"""Exchanges logged in each recorded hour, each of two texts."""
LATENCY_MS = (12.0, 25.0, 40.0, 90.0)
LABELS = ("positive", "negative")
ESTIMATED = (0.91, 0.88, 0.8, 0.71)
EMBEDDING_SCORES = (0.52, 0.55, 0.66, 0.81)
EMBEDDING_THRESHOLD = 0.6
GROUP = {
    "window_share": 0.38,
    "reference_share": 0.02,
    "window_texts": 190,
    "terms": [{"term": "@mention", "window_share": 0.9, "reference_share": 0.01}],
    "examples": ["@sam lol this film tho"],
    "estimated_accuracy": 0.71,
    "estimated_accuracy_interval": [0.64, 0.78],
    "labelled": 0,
    "live_accuracy": None,
}


def record_history(store: MonitorStore, now: datetime, model_version: str) -> None:
    for hour, exchanges, latency, estimated, score in zip(
        HOURS_AGO, EXCHANGES, LATENCY_MS, ESTIMATED, EMBEDDING_SCORES, strict=True
    ):
        sent = now - timedelta(hours=hour)
        for number in range(exchanges):
            event_id = f"history-{hour}-{number}"
            request, response = v2_exchange(["a recorded text", "another one"], list(LABELS), model_version)
            answered = sent + timedelta(milliseconds=latency)
            for kind, payload, time in (("request", request, sent), ("response", response, answered)):
                event = parse_event(*binary_cloud_event(event_id, kind, payload, model_version))
                store.add_event(replace(event, time=time), received_at=answered)
        drifted = score > EMBEDDING_THRESHOLD
        result = {
            "decision": "drift" if drifted else "no_drift",
            "reason": "recorded",
            "scores": {
                "embedding": {
                    "score": score,
                    "threshold": EMBEDDING_THRESHOLD,
                    "drift_when": "above",
                    "drifted": drifted,
                }
            },
            "window": {"size": 200, "model_version": model_version, "live_accuracy": None},
            "estimate": {"accuracy": estimated, "accuracy_interval": [estimated - 0.03, estimated + 0.03]},
            "groups": [GROUP] if drifted else [],
        }
        store.add_check(answered, model_version, result["decision"], "recorded", result, "")
