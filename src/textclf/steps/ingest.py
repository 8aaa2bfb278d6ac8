"""The ingest step: load, validate, de-duplicate and split the data; open the pipeline's MLflow run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from textclf.data.balance import ClassBalance
from textclf.data.ingest import data_report, ingest
from textclf.data.sources import LABEL, DataSource
from textclf.registry.gate import TRAINED_ON_FEEDBACK_TAG

TRIGGER_TAG = "textclf.trigger"
RARE_CLASSES_TAG = "textclf.rare_classes"
log = logging.getLogger(__name__)


@dataclass
class IngestOutcome:
    mlflow_run_id: str
    data_fingerprint: str
    split_sizes: dict[str, int]
    dropped: dict[str, int]


def run_ingest(
    source: DataSource,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    split_paths: dict[str, Path],
    report_path: Path,
    tracking_uri: str,
    experiment_name: str,
    run_name: str,
    extra_train: DataSource | None = None,
    trigger: str = "",
) -> IngestOutcome:
    """Ingest the data and open the pipeline's MLflow run, which later steps resume."""
    import mlflow

    from textclf.registry.tracking import ensure_experiment

    result = ingest(source, validation_fraction, test_fraction, seed, extra_train)
    for name, path in split_paths.items():
        result.splits[name].to_parquet(path, index=False)
    report = data_report(result)
    report_path.write_text(report)
    experiment_id = ensure_experiment(experiment_name, tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name or None) as run:
        mlflow.set_tags({"textclf.pipeline": "training", "data_fingerprint": result.fingerprint})
        if trigger:
            mlflow.set_tag(TRIGGER_TAG, trigger)
            if extra_train is not None:
                # The monitor started this run with rows it supplied: labels anyone holding the feedback
                # token could send. The gate (require_approval) and the model card say so.
                mlflow.set_tag(TRAINED_ON_FEEDBACK_TAG, "true")
        mlflow.log_params(
            {
                "data": source.spec,
                "extra_train_data": extra_train.spec if extra_train else "",
                "text_column": source.text_column,
                "label_column": source.label_column,
                "validation_fraction": validation_fraction,
                "test_fraction": test_fraction,
                "split_seed": seed,
            }
        )
        sizes = {name: len(split) for name, split in result.splits.items()}
        mlflow.log_metrics({f"data_{name}_rows": float(n) for name, n in sizes.items()})
        mlflow.log_metric("data_rows_dropped", float(sum(result.dropped.values())))
        mlflow.log_text(report, "data/data_report.md")
        rare = ClassBalance.of(result.splits["train"][LABEL]).warnings()
        if rare:
            mlflow.set_tag(RARE_CLASSES_TAG, "; ".join(rare))
            for warning in rare:
                log.warning(warning)
        return IngestOutcome(run.info.run_id, result.fingerprint, sizes, result.dropped)
