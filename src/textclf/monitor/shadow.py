"""The shadow comparison: a challenger that saw the champion's live texts, judged against the champion on them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _latency(milliseconds: pd.Series) -> dict[str, float] | None:
    if milliseconds.empty:
        return None
    values = milliseconds.to_numpy(dtype=float)
    return {
        "mean": round(float(values.mean()), 3),
        "p50": round(float(np.percentile(values, 50)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
    }


def compare_shadow(window: pd.DataFrame) -> dict[str, Any]:
    """Agreement, disagreement per champion class (and what the challenger said instead), each model's latency,
    and, on the texts with feedback, each model's accuracy. `window` holds one champion and one challenger
    version (`MonitorStore.shadow_window`); the latency of a request counts once, not once per text."""
    if window.empty:
        return {"texts": 0, "requests": 0, "champion_version": None, "challenger_version": None}
    agrees = window["champion_label"] == window["challenger_label"]
    per_class = {}
    for label, rows in window.groupby("champion_label", sort=True):
        disagreeing = rows.loc[rows["challenger_label"] != label, "challenger_label"]
        per_class[str(label)] = {
            "texts": len(rows),
            "disagreement": round(len(disagreeing) / len(rows), 6),
            "challenger_said": {str(k): int(v) for k, v in disagreeing.value_counts().sort_index().items()},
        }
    requests = window.drop_duplicates("request_id")
    labelled = window[window["feedback_label"].notna()]
    accuracy = None
    if not labelled.empty:
        truth = labelled["feedback_label"].astype(str)
        accuracy = {
            "champion": round(float((labelled["champion_label"] == truth).mean()), 6),
            "challenger": round(float((labelled["challenger_label"] == truth).mean()), 6),
        }
    return {
        "champion_version": str(window["champion_version"].iloc[-1]),
        "challenger_version": str(window["challenger_version"].iloc[-1]),
        "texts": len(window),
        "requests": len(requests),
        "since": window["time"].min().isoformat(),
        "until": window["time"].max().isoformat(),
        "agreement": round(float(agrees.mean()), 6),
        "per_class": per_class,
        "latency_ms": {
            "champion": _latency(requests["champion_ms"]),
            "challenger": _latency(requests["challenger_ms"]),
        },
        "labelled": len(labelled),
        "accuracy": accuracy,
    }
