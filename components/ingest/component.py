from typing import NamedTuple

from kfp.dsl import Dataset, Markdown, Output

from textclf.components import textclf_component


@textclf_component
def ingest(
    data: str,
    dataset: dict,
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
    open the pipeline's MLflow run.

    Args:
        run_name: name of the pipeline's MLflow run (the KFP run name).
        data_report: Markdown description of the data: rows read and dropped, class balance, lengths.
    """
    from collections import namedtuple
    from pathlib import Path

    from textclf.data.sources import DatasetConfig, DataSource
    from textclf.steps.ingest import run_ingest

    reading = DatasetConfig.model_validate(dataset)
    outputs = {"train": train_split, "validation": validation_split, "test": test_split}
    outcome = run_ingest(
        DataSource(data, reading.text_column, reading.label_column, reading.hf_split, reading.hf_config),
        reading.validation_fraction,
        reading.test_fraction,
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
