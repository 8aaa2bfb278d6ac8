"""The saved drift reports: one HTML page and one JSON document per check, written, listed and pruned here
and nowhere else (the checker writes them, the monitoring service lists and serves them)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from textclf.monitor.decision import score_text
from textclf.monitor.groups import describe
from textclf.monitor.report import DriftReport

SUFFIXES = (".html", ".json")


@dataclass(frozen=True)
class ReportRetention:
    """How much of the disk saved reports may take (their defaults are `MonitorConfig`'s)."""

    max_bytes: int
    max_age_days: float
    max_triggering_bytes: int


class ReportArchive:
    """A folder of saved reports: `NAME.html` (the decision, its scores and Evidently's reports) and `NAME.json`
    (the decision with Evidently's snapshots)."""

    def __init__(self, directory: Path):
        self.directory = directory

    def html_path(self, name: str) -> Path:
        return self.directory / f"{name}.html"

    def write(self, name: str, title: str, decision: dict[str, Any], report: DriftReport) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.html_path(name).write_text(report_page(title, decision, report))
        document = {**decision, "evidently": report.snapshots}
        (self.directory / f"{name}.json").write_text(json.dumps(document, default=str))

    def names(self, prefix: str = "") -> list[str]:
        """Saved report names starting with `prefix`, newest first (names sort by time)."""
        return sorted({path.stem for path in self.directory.glob(f"{prefix}*.json")}, reverse=True)

    def size_of(self, name: str) -> int:
        return sum(path.stat().st_size for suffix in SUFFIXES if (path := self.directory / f"{name}{suffix}").exists())

    def prune(self, prefix: str, retention: ReportRetention, protected: set[str], now: datetime) -> list[str]:
        """Delete reports, oldest first, until those left fit `retention`; returns the names deleted.

        Reports in `protected` (those that started a retraining run) count against a budget of their own, so
        everyday checks can never push them out, and they cannot fill the disk either."""
        oldest_kept = now - timedelta(days=retention.max_age_days)
        budgets = {False: retention.max_bytes, True: retention.max_triggering_bytes}
        used = {False: 0, True: 0}
        deleted = []
        for name in self.names(prefix):  # newest first
            is_trigger = name in protected
            size = self.size_of(name)
            written = datetime.fromtimestamp((self.directory / f"{name}.json").stat().st_mtime, UTC)
            if used[is_trigger] + size <= budgets[is_trigger] and (is_trigger or written >= oldest_kept):
                used[is_trigger] += size
                continue
            for suffix in SUFFIXES:
                (self.directory / f"{name}{suffix}").unlink(missing_ok=True)
            deleted.append(name)
        return deleted


def report_page(title: str, decision: dict[str, Any], report: DriftReport) -> str:
    """One HTML page per check: the decision and its scores on top, then each Evidently report."""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{score_text(score['score'])}</td><td>{score['threshold']:.4g}</td>"
        f"<td>{'drift' if score['drifted'] else 'ok'}</td></tr>"
        for name, score in decision["scores"].items()
    )
    quality = ""
    if report.quality:
        f1 = ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in report.quality["per_class_f1"].items())
        quality = (
            f"<p>Feedback on {report.quality['labelled']} predictions: accuracy {report.quality['accuracy']:.3f} "
            f"(reference {report.quality['reference_accuracy']:.3f}); F1 by class: {f1}</p>"
        )
    estimate = decision.get("estimate")
    if estimate:
        low, high = estimate["accuracy_interval"]
        quality += (
            f"<p>Estimated without labels, from the calibrated probabilities of {estimate['texts']} predictions: "
            f"accuracy {estimate['accuracy']:.3f} ({estimate['level']:.0%} interval {low:.3f} to {high:.3f}), "
            f"macro F1 {estimate['macro_f1']:.3f}.</p>"
        )
    quality += groups_section(decision.get("groups") or [])
    frames = "".join(
        f"<h2>{html.escape(section)}</h2>"
        f'<iframe style="width:100%;height:900px;border:0" srcdoc="{html.escape(body, quote=True)}"></iframe>'
        for section, body in report.sections.items()
    )
    window = decision["window"]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}: {html.escape(decision['decision'])}</h1>"
        f"<p>{html.escape(decision['reason'])}</p>"
        f"<p>Window: {window['size']} predictions of model version {html.escape(str(window['model_version']))}, "
        f"{html.escape(str(window['start']))} to {html.escape(str(window['end']))}; reference: "
        f"{report.sizes.get('reference', 0)} validation texts.</p>{quality}"
        f"<table border='1' cellpadding='4'><tr><th>check</th><th>score</th><th>threshold</th><th></th></tr>"
        f"{rows}</table>{frames}</body></html>"
    )


def groups_section(groups: list[dict[str, Any]]) -> str:
    """The drift groups (`textclf.monitor.groups`) as a table: what each is, its shares, accuracy and examples."""
    if not groups:
        return ""
    rows = []
    for group in groups:
        live = "" if group["live_accuracy"] is None else f"{group['live_accuracy']:.3f} ({group['labelled']} labels)"
        examples = "".join(f"<li>{html.escape(text)}</li>" for text in group["examples"])
        rows.append(
            f"<tr><td>{html.escape(describe(group))}</td><td>{group['window_texts']}</td><td>{live}</td>"
            f"<td><ul>{examples}</ul></td></tr>"
        )
    return (
        "<h2>What drifted: groups of the window's texts</h2><table border='1' cellpadding='4'><tr><th>group</th>"
        f"<th>window texts</th><th>live accuracy</th><th>examples</th></tr>{''.join(rows)}</table>"
    )
