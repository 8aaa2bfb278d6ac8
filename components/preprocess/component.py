from kfp.dsl import Artifact, Dataset, Input, Output

from textclf.components import textclf_component


@textclf_component
def preprocess(
    train_split: Input[Dataset],
    validation_split: Input[Dataset],
    test_split: Input[Dataset],
    strip_html: bool,
    strip_urls: bool,
    normalize_unicode: bool,
    normalize_whitespace: bool,
    lowercase: bool,
    base_model: str,
    max_length: int,
    tracking_uri: str,
    mlflow_run_id: str,
    train_data: Output[Dataset],
    validation_data: Output[Dataset],
    test_data: Output[Dataset],
    preprocessing: Output[Artifact],
):
    """Clean texts, build the label map and tokenize with the base model's tokenizer."""
    from pathlib import Path

    import mlflow

    from textclf.cleaning import CleaningConfig
    from textclf.steps import run_preprocess
    from textclf.tracking import resume_run

    cleaning = CleaningConfig(strip_html, strip_urls, normalize_unicode, normalize_whitespace, lowercase)
    outputs = {"train": train_data, "validation": validation_data, "test": test_data}
    with resume_run(tracking_uri, mlflow_run_id):
        summary = run_preprocess(
            {
                "train": Path(train_split.path),
                "validation": Path(validation_split.path),
                "test": Path(test_split.path),
            },
            {name: Path(artifact.path) for name, artifact in outputs.items()},
            Path(preprocessing.path),
            cleaning,
            base_model,
            max_length,
        )
        mlflow.log_params({f"clean_{k}": v for k, v in cleaning.to_dict().items()})
        mlflow.log_dict(summary, "data/preprocess_summary.json")
    for name, artifact in outputs.items():
        artifact.metadata.update(summary[name])
