"""The dashboard's time series, read from the monitor's store: traffic (requests, texts, the predicted class mix),
latency (p50 and p99) per time bucket, and every drift check's scores, thresholds, estimated and live accuracy and
drift groups. The UI's Monitor tab draws them; Prometheus and Grafana see the same numbers through /metrics."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from textclf.monitor.decision import json_safe
from textclf.monitor.store import MonitorStore

MAX_DASHBOARD_ROWS = 200_000
"""Most predictions (and exchanges for latency) one dashboard reads: the newest, so memory stays bounded."""
MAX_DASHBOARD_CHECKS = 1000


def _bucketed(times: pd.Series, edges: pd.DatetimeIndex) -> np.ndarray:
    positions = np.searchsorted(edges.asi8, pd.DatetimeIndex(times).asi8, side="right") - 1
    return np.clip(positions, 0, len(edges) - 2)


def _percentile(values: np.ndarray, share: float) -> float | None:
    return round(float(np.percentile(values, share)), 3) if len(values) else None


def dashboard_series(
    store: MonitorStore, since: datetime, until: datetime, buckets: int, max_rows: int = MAX_DASHBOARD_ROWS
) -> dict[str, Any]:
    """The series from `since` to `until` in `buckets` equal time buckets."""
    edges = pd.date_range(since, until, periods=buckets + 1)
    traffic = store.traffic(since, max_rows)
    traffic = traffic[traffic["time"] <= until]
    latencies = store.latencies(since, max_rows)
    latencies = latencies[latencies["time"] <= until]
    traffic_bucket = _bucketed(traffic["time"], edges)
    latency_bucket = _bucketed(latencies["time"], edges)
    classes = sorted(traffic["predicted_label"].unique().tolist())
    series = []
    for bucket in range(buckets):
        rows = traffic[traffic_bucket == bucket]
        milliseconds = latencies["milliseconds"].to_numpy()[latency_bucket == bucket]
        mix = rows["predicted_label"].value_counts()
        series.append(
            {
                "start": edges[bucket].isoformat(),
                "requests": int(rows["request_id"].nunique()),
                "texts": len(rows),
                "class_mix": {label: int(mix.get(label, 0)) for label in classes},
                "latency_p50_ms": _percentile(milliseconds, 50),
                "latency_p99_ms": _percentile(milliseconds, 99),
            }
        )
    checks = []
    for record in store.checks_since(since, MAX_DASHBOARD_CHECKS):
        if record.checked_at > until:
            continue
        result, estimate = record.result, record.result.get("estimate") or {}
        checks.append(
            {
                **record.summary(),
                "scores": result.get("scores", {}),
                "estimated_accuracy": estimate.get("accuracy"),
                "estimated_accuracy_interval": estimate.get("accuracy_interval"),
                "live_accuracy": (result.get("window") or {}).get("live_accuracy"),
                "groups": result.get("groups", []),
            }
        )
    return json_safe(
        {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "bucket_seconds": (until - since) / timedelta(seconds=1) / buckets,
            "classes": classes,
            "traffic_truncated": len(traffic) >= max_rows,
            "traffic": series,
            "checks": checks,
        }
    )
