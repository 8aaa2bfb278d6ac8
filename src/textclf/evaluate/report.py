"""Evaluation reports: the most confident mistakes, the error-analysis page, the confusion-matrix plot and
the model card."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textclf.data.balance import ClassBalance
from textclf.evaluate.behaviour import behaviour_section
from textclf.serve.backends import AUTO_ACCURACY_TOLERANCE, eligible_backends


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
    provenance: list[str] = field(default_factory=list)
    """How this training run came about, when not by hand (a drift episode, rows the monitor supplied)."""
    train_class_counts: dict[str, int] = field(default_factory=dict)
    """Training rows per class, for the card's class-balance section."""
    calibration: dict[str, float] = field(default_factory=dict)
    """The temperature and the test split's ECE and mean confidence before and after it."""
    behaviour: dict[str, Any] | None = None
    """The behavioural tests' report (`BehaviourReport.to_dict`), where a suite ran."""
    behaviour_note: str = ""
    """Which behavioural suite ran, or why none did."""
    cross_validation_lines: list[str] = field(default_factory=list)
    """The cross-validation section, where the run cross-validated its recipe."""
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each inference backend's validation accuracy (`ModelMetadata.backends`)."""


def backends_section(backends: dict[str, dict[str, Any]]) -> list[str]:
    """Which backends `textclf serve --backend auto` may choose for this model, and why."""
    if not backends:
        return []
    eligible = eligible_backends(backends)
    lines = [
        "",
        "## Serving backends",
        "",
        f"`auto` serves the fastest of those within {AUTO_ACCURACY_TOLERANCE * 100:.1f} points of PyTorch's "
        "validation accuracy.",
        "",
        "| backend | validation accuracy | agreement with PyTorch | auto may serve it |",
        "|---|---:|---:|---|",
    ]
    for name, record in backends.items():
        if "export_error" in record:
            lines.append(f"| {name} | export failed: {record['export_error'][:200]} | | no |")
            continue
        lines.append(
            f"| {name} | {record['validation_accuracy']:.4f} | {record['agreement_with_torch']:.4f} "
            f"| {'yes' if name in eligible else 'no'} |"
        )
    return lines


def calibration_section(calibration: dict[str, float], untrained: dict[str, Any] | None) -> list[str]:
    """The card's lines on calibration: temperature scaling's effect on the test split, and the confidence
    of the base model before fine-tuning next to the trained model's."""
    if not calibration:
        return []
    lines = [
        "",
        "## Calibration",
        "",
        f"Temperature scaling fitted on the validation split: T = {calibration['temperature']:.3f} "
        "(serving divides the logits by it; the predicted class never changes).",
        "",
        "| test split | ECE | mean top-class probability |",
        "|---|---:|---:|",
    ]
    if untrained is not None:
        lines.append(f"| base model before fine-tuning | {untrained['ece']:.4f} | {untrained['mean_confidence']:.4f} |")
    lines += [
        f"| after fine-tuning, before scaling | {calibration['ece_before']:.4f} "
        f"| {calibration['mean_confidence_before']:.4f} |",
        f"| after fine-tuning and scaling (served) | {calibration['ece_after']:.4f} "
        f"| {calibration['mean_confidence_after']:.4f} |",
    ]
    return lines


def class_balance_section(
    train_class_counts: dict[str, int], class_weights: dict[str, float] | None, per_class: dict[str, dict[str, Any]]
) -> list[str]:
    """The card's lines on class balance: rows per class, whether the loss was weighted, and a warning with
    the test F1 of each rare class."""
    if not train_class_counts:
        return []
    balance = ClassBalance(train_class_counts)
    lines = ["", "## Class balance", "", "| class | training rows | share | loss weight | test F1 |"]
    lines.append("|---|---:|---:|---:|---:|")
    for label, count in train_class_counts.items():
        weight = f"{class_weights[label]:.3f}" if class_weights and label in class_weights else "1"
        f1 = per_class.get(label, {}).get("f1")
        lines.append(
            f"| {label} | {count:,} | {count / balance.total:.1%} | {weight} | {'n/a' if f1 is None else f'{f1:.4f}'} |"
        )
    lines.append("")
    skew = (
        "A class has no training rows"
        if balance.ratio == float("inf")
        else f"The largest class has {balance.ratio:.1f}x the rows of the smallest"
    )
    lines.append(f"{skew}: the loss {'was' if class_weights else 'was not'} class-weighted.")
    lines += [f"- **Warning:** {warning}" for warning in balance.warnings()]
    return lines


def training_provenance(trigger: str, extra_train_data: str, trained_on_feedback: bool) -> list[str]:
    """The model card's lines on what started the run and what it learned from beyond its data source."""
    lines = []
    if trigger:
        lines.append(f"- Started by the drift monitor: episode `{trigger}`")
    if extra_train_data:
        lines.append(f"- Extra training rows: `{extra_train_data}`")
    if trained_on_feedback:
        lines.append(
            "- **Trained on feedback labels** sent to the monitor's `/feedback`: check where they came from "
            "(the monitor's feedback store records each label's source) before relying on this model"
        )
    return lines


def model_card(inputs: ModelCardInputs) -> str:
    """A Markdown model card: data, training configuration, metrics, baselines, intended use and limits."""
    metrics = inputs.metrics
    lines = [
        f"# Model card: {inputs.model_name}",
        "",
        "## Data",
        "",
        f"- Source: `{inputs.data_spec}` (fingerprint `{inputs.data_fingerprint}`)",
        "- Split sizes: " + ", ".join(f"{name} {size:,}" for name, size in inputs.split_sizes.items()),
        f"- Classes: {', '.join(inputs.labels)}",
        *inputs.provenance,
        "",
        "## Training configuration",
        "",
        f"- Base model: `{inputs.base_model}`",
    ]
    lines += [f"- {name}: {value}" for name, value in sorted(inputs.training_params.items()) if name != "class_weights"]
    lines += [
        "",
        "## Test metrics",
        "",
        "| metric | value |",
        "|---|---:|",
    ]
    for name in (
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "macro_precision",
        "macro_recall",
        "ece",
        "mean_confidence",
    ):
        lines.append(f"| {name} | {metrics[name]:.4f} |")
    lines += ["", "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label, scores in metrics["per_class"].items():
        lines.append(
            f"| {label} | {scores['precision']:.4f} | {scores['recall']:.4f} | {scores['f1']:.4f} "
            f"| {scores['support']} |"
        )
    lines += class_balance_section(
        inputs.train_class_counts, inputs.training_params.get("class_weights"), metrics["per_class"]
    )
    lines += calibration_section(inputs.calibration, inputs.baselines.get("base_model_untrained"))
    lines += [
        "",
        "## Baselines (same test split)",
        "",
        "| model | accuracy | macro F1 | mean confidence |",
        "|---|---:|---:|---:|",
    ]
    lines.append(
        f"| this model | {metrics['accuracy']:.4f} | {metrics['macro_f1']:.4f} | {metrics['mean_confidence']:.4f} |"
    )
    for name, baseline in inputs.baselines.items():
        lines.append(
            f"| {name} | {baseline['accuracy']:.4f} | {baseline['macro_f1']:.4f} | {baseline['mean_confidence']:.4f} |"
        )
    lines += behaviour_section(inputs.behaviour) or (
        ["", "## Behavioural tests", "", f"None ran: {inputs.behaviour_note}."] if inputs.behaviour_note else []
    )
    lines += inputs.cross_validation_lines
    lines += backends_section(inputs.backends)
    # Cards of models from before the prediction length was recorded: they predicted at max_length.
    prediction_tokens = inputs.training_params.get("predict_max_length") or inputs.training_params.get(
        "max_length", "n/a"
    )
    lines += [
        "",
        "## Intended use",
        "",
        f"Classifying short English texts like those in `{inputs.data_spec}` into: {', '.join(inputs.labels)}.",
        "Predictions come with the class probabilities; route low-confidence ones to a person.",
        "",
        "## Limits",
        "",
        "- Accuracy holds for text like the training data; other domains, languages or styles drift, and the",
        "  monitoring service exists to notice that.",
        f"- Texts longer than `predict_max_length` ({prediction_tokens} tokens) are truncated; training read "
        f"{inputs.training_params.get('max_length', 'n/a')} tokens a text.",
        "- Labels carry the biases of whoever wrote them; check the most confident mistakes before trusting",
        "  the model on decisions about people.",
    ]
    return "\n".join(lines) + "\n"
