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
    open the pipeline's MLflow run.

    Args:
        data: 'demo[:domain]', 'hf:<dataset id>', or a CSV/JSONL/Parquet path or URL.
        text_column: column holding the text.
        label_column: column holding the class label.
        hf_split: split to load from a Hugging Face dataset.
        hf_config: configuration name of a Hugging Face dataset, if it has several.
        validation_fraction: share of rows held out for validation.
        test_fraction: share of rows held out for the test split.
        seed: seed for splitting, initialisation, data order and tuning.
        tracking_uri: MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db.
        experiment_name: MLflow experiment.
        run_name: name of the pipeline's MLflow run (the KFP run name).
        extra_train_data: labelled rows (text, label) added to the training split only: feedback, new files.
        trigger: what started this run (the monitor's drift episode), as an MLflow tag.
        train_split: the raw training split (ingest's output).
        validation_split: the raw validation split.
        test_split: the raw test split.
        data_report: Markdown description of the data: rows read and dropped, class balance, lengths.
    """
    from collections import namedtuple
    from pathlib import Path

    from textclf.data.sources import DataSource
    from textclf.steps.ingest import run_ingest

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
