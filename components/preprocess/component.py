from kfp.dsl import Artifact, Dataset, Input, Output

from textclf.components import textclf_component


@textclf_component
def preprocess(
    train_split: Input[Dataset],
    validation_split: Input[Dataset],
    test_split: Input[Dataset],
    cleaning: dict,
    encoder: dict,
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

    from textclf.data.cleaning import CleaningConfig
    from textclf.registry.tracking import resume_run
    from textclf.steps.preprocess import run_preprocess
    from textclf.train.modeling import EncoderConfig

    cleaning_steps = CleaningConfig.model_validate(cleaning)
    reading = EncoderConfig.model_validate(encoder)
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
            cleaning_steps,
            reading.base_model,
            reading.max_length,
            reading.truncation,
            reading.predict_max_length,
        )
        mlflow.log_params({f"clean_{k}": v for k, v in cleaning_steps.to_dict().items()})
        mlflow.log_dict(summary, "data/preprocess_summary.json")
    for name, artifact in outputs.items():
        artifact.metadata.update(summary[name])
