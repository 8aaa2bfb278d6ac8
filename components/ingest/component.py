from typing import NamedTuple

from kfp.dsl import Dataset, Markdown, Output

from textclf.components import textclf_component


@textclf_component
def ingest(
    data: str,
    text_column: str,
    label_column: str,
    hf_split: str,
    hf_config: str,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    tracking_uri: str,
    experiment_name: str,
    run_name: str,
    extra_train_data: str,
    trigger: str,
    train_split: Output[Dataset],
    validation_split: Output[Dataset],
    test_split: Output[Dataset],
    data_report: Output[Markdown],
) -> NamedTuple("IngestOutputs", mlflow_run_id=str, data_fingerprint=str, split_sizes=dict):
    """Load, validate, de-duplicate and split the dataset (extra training rows join the training split only);
    open the pipeline's MLflow run."""
    from collections import namedtuple
    from pathlib import Path

    from textclf.data import DataSource
    from textclf.steps import run_ingest

    outputs = {"train": train_split, "validation": validation_split, "test": test_split}
    outcome = run_ingest(
        DataSource(data, text_column, label_column, hf_split, hf_config),
        validation_fraction,
        test_fraction,
        seed,
        {name: Path(artifact.path) for name, artifact in outputs.items()},
        Path(data_report.path),
        tracking_uri,
        experiment_name,
        run_name,
        DataSource(extra_train_data) if extra_train_data else None,
        trigger,
    )
    for name, artifact in outputs.items():
        artifact.metadata.update({"rows": outcome.split_sizes[name], "fingerprint": outcome.data_fingerprint})
    data_report.metadata["dropped"] = outcome.dropped
    result = namedtuple("IngestOutputs", ["mlflow_run_id", "data_fingerprint", "split_sizes"])
    return result(outcome.mlflow_run_id, outcome.data_fingerprint, outcome.split_sizes)
