"""Live quality: accuracy and per-class F1 of the feedback on a window of logged predictions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from textclf.metrics import label_quality
from textclf.monitor.report import known_labels_only


def live_quality(window: pd.DataFrame, classes: Sequence[str] | None) -> dict[str, Any]:
    """`label_quality` over the window's feedback. With the model's `classes` known, feedback naming none of
    them counts as unlabelled (`known_labels_only`), as in the drift report; the check and `GET /quality` both
    compute it here, so they agree on the same window."""
    feedback = window["feedback_label"]
    if classes is not None:
        feedback = known_labels_only(feedback, classes)
    labelled = feedback.notna()
    return label_quality(feedback[labelled].tolist(), window.loc[labelled, "predicted_label"].tolist())
