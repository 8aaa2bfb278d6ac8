"""Evaluation reports: the most confident mistakes, the error-analysis page, the confusion-matrix plot and
the model card."""

from __future__ import annotations

import base64
import html
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textclf.data.balance import ClassBalance
from textclf.serve.backends import AUTO_ACCURACY_TOLERANCE, eligible_backends

MODEL_CARD_TEMPLATE = "model_card.md.jinja"


def confident_mistakes(
    texts: list[str], true_labels: list[str], predicted: list[str], scores: np.ndarray, limit: int = 20
) -> pd.DataFrame:
    """The wrong predictions the model was most sure of: where to look first for label noise or gaps."""
    frame = pd.DataFrame({"text": texts, "true_label": true_labels, "predicted_label": predicted, "score": scores})
    wrong = frame[frame["true_label"] != frame["predicted_label"]]
    return wrong.sort_values("score", ascending=False).head(limit).reset_index(drop=True)


def error_analysis_html(mistakes: pd.DataFrame, confusion_png: bytes, reliability_png: bytes = b"") -> str:
    """One page for the KFP UI: the confusion matrix, the reliability diagram and the most confident mistakes."""
    image = base64.b64encode(confusion_png).decode()
    reliability = (
        "<h1>Reliability</h1><img alt='reliability diagram' "
        f"src='data:image/png;base64,{base64.b64encode(reliability_png).decode()}'>"
        if reliability_png
        else ""
    )
    rows = "\n".join(
        f"<tr><td>{row.score:.3f}</td><td>{html.escape(row.true_label)}</td>"
        f"<td>{html.escape(row.predicted_label)}</td><td>{html.escape(row.text)}</td></tr>"
        for row in mistakes.itertuples()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Error analysis</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
        "table{border-collapse:collapse}</style></head><body>"
        f"<h1>Confusion matrix</h1><img alt='confusion matrix' src='data:image/png;base64,{image}'>{reliability}"
        f"<h1>Most confident mistakes ({len(mistakes)})</h1><table><tr><th>score</th><th>true</th>"
        f"<th>predicted</th><th>text</th></tr>{rows}</table></body></html>"
    )


def plot_confusion_matrix(matrix: list[list[int]], labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(matrix)
    size = max(4.0, 0.8 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(values, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = values.max() / 2 if values.size else 0
    for (row, column), count in np.ndenumerate(values):
        axes.text(column, row, str(count), ha="center", va="center", color="white" if count > threshold else "black")
    axes.set_title("Confusion matrix (test split)")
    figure.tight_layout()
    figure.savefig(path, dpi=120, format="png")
    plt.close(figure)


@dataclass(frozen=True)
class Provenance:
    """How a training run came about, when not by hand: the drift episode that started it, rows the monitor
    supplied, and whether those carried feedback labels."""

    trigger: str
    extra_train_data: str
    trained_on_feedback: bool


@dataclass
class ModelCardInputs:
    model_name: str
    data_spec: str
    data_fingerprint: str
    split_sizes: dict[str, int]
    base_model: str
    training_params: dict[str, Any]
    metrics: dict[str, Any]
    baselines: dict[str, dict[str, Any]]
    labels: list[str]
    provenance: Provenance | None = None
    """How the training run came about; None: by hand."""
    train_class_counts: dict[str, int] = field(default_factory=dict)
    """Training rows per class, for the card's class-balance section."""
    calibration: dict[str, float] = field(default_factory=dict)
    """The temperature and the test split's ECE and mean confidence before and after it."""
    behaviour: dict[str, Any] | None = None
    """The behavioural tests' report (`BehaviourReport.to_dict`), where a suite ran."""
    behaviour_note: str = ""
    """Which behavioural suite ran, or why none did."""
    cross_validation: dict[str, Any] | None = None
    """The cross-validate step's result, where the run cross-validated its recipe."""
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each inference backend's validation accuracy (`ModelMetadata.backends`)."""


@cache
def _template() -> Any:
    """The model card's template module: the whole card and each section, as Jinja macros."""
    from importlib import resources

    from jinja2 import Environment, StrictUndefined

    environment = Environment(
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, undefined=StrictUndefined, autoescape=False
    )
    return environment.from_string(resources.files(__package__).joinpath(MODEL_CARD_TEMPLATE).read_text()).module


def _backend_rows(backends: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    eligible = eligible_backends(backends) if backends else []
    return [
        {
            "name": name,
            "export_error": record.get("export_error"),
            "validation_accuracy": record.get("validation_accuracy"),
            "agreement_with_torch": record.get("agreement_with_torch"),
            "eligible": name in eligible,
        }
        for name, record in backends.items()
    ]


def _class_balance(
    train_class_counts: dict[str, int], class_weights: dict[str, float] | None, per_class: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    if not train_class_counts:
        return None
    balance = ClassBalance(train_class_counts)
    rows = []
    for label, count in train_class_counts.items():
        f1 = per_class.get(label, {}).get("f1")
        rows.append(
            {
                "label": label,
                "count": count,
                "share": count / balance.total,
                "weight": f"{class_weights[label]:.3f}" if class_weights and label in class_weights else "1",
                "f1": "n/a" if f1 is None else f"{f1:.4f}",
            }
        )
    ratio = None if balance.ratio == float("inf") else balance.ratio
    return {"rows": rows, "ratio": ratio, "weighted": bool(class_weights), "warnings": balance.warnings()}


def _behaviour_report(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The report with its failed cases flattened for the card: one line each, at most 160 characters."""
    if not report:
        return None
    cases = [
        {
            "test": test["name"],
            "text": _one_line(example["text"]),
            "detail": _one_line(", ".join(f"{key}: {value}" for key, value in example.items() if key != "text")),
        }
        for test in report["tests"]
        for example in test["failed_examples"]
    ]
    return {**report, "failed_cases": cases}


def _one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(str(text).split()).replace("`", "'").replace("|", "/")
    return flat if len(flat) <= limit else f"{flat[: limit - 1]}…"


def behaviour_section(report: dict[str, Any] | None, note: str = "") -> str:
    """The card's behavioural-tests section: one row per test and a few failed cases (or why none ran)."""
    return str(_template().behaviour(_behaviour_report(report), note))


def cross_validation_section(result: dict[str, Any] | None) -> str:
    """The card's cross-validation section: mean ± standard deviation, per fold and per class."""
    return str(_template().cross_validation(result))


def training_provenance(provenance: Provenance) -> list[str]:
    """The card's lines on what started the run and what it learned from beyond its data source."""
    rendered = _template().provenance(provenance.trigger, provenance.extra_train_data, provenance.trained_on_feedback)
    return [line for line in str(rendered).splitlines() if line]


def model_card(inputs: ModelCardInputs) -> str:
    """A Markdown model card: data, training configuration, metrics, baselines, calibration, behavioural tests,
    cross-validation, serving backends, intended use and limits, all from one template."""
    params = inputs.training_params
    context = {
        "model_name": inputs.model_name,
        "data_spec": inputs.data_spec,
        "data_fingerprint": inputs.data_fingerprint,
        "split_sizes": inputs.split_sizes,
        "labels": inputs.labels,
        "provenance": asdict(inputs.provenance) if inputs.provenance else {},
        "base_model": inputs.base_model,
        "training_params": [(name, value) for name, value in sorted(params.items()) if name != "class_weights"],
        "metrics": inputs.metrics,
        "class_balance": _class_balance(
            inputs.train_class_counts, params.get("class_weights"), inputs.metrics["per_class"]
        ),
        "calibration": inputs.calibration,
        "untrained": inputs.baselines.get("base_model_untrained"),
        "baselines": inputs.baselines,
        "behaviour": _behaviour_report(inputs.behaviour),
        "behaviour_note": inputs.behaviour_note,
        "cross_validation": inputs.cross_validation,
        "backends": _backend_rows(inputs.backends),
        "tolerance_points": AUTO_ACCURACY_TOLERANCE * 100,
        # Cards of models from before the prediction length was recorded: they predicted at max_length.
        "prediction_tokens": params.get("predict_max_length") or params.get("max_length", "n/a"),
        "training_tokens": params.get("max_length", "n/a"),
    }
    return str(_template().card(context))
