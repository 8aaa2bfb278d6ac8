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
    truncation: str,
    predict_max_length: int,
    tracking_uri: str,
    mlflow_run_id: str,
    train_data: Output[Dataset],
    validation_data: Output[Dataset],
    test_data: Output[Dataset],
    preprocessing: Output[Artifact],
):
    """Clean texts, build the label map and tokenize with the base model's tokenizer.

    Args:
        train_split: the raw training split (ingest's output).
        validation_split: the raw validation split.
        test_split: the raw test split.
        strip_html: remove HTML tags and unescape entities.
        strip_urls: remove URLs.
        normalize_unicode: NFKC-normalize unicode.
        normalize_whitespace: collapse runs of whitespace.
        lowercase: lowercase texts (uncased tokenizers do this anyway).
        base_model: Hub id or local path of the encoder to fine-tune.
        max_length: tokens per text; longer texts are truncated.
        truncation: how a longer text is cut: head (its first tokens) or head_tail (its first quarter and last
            three quarters).
        predict_max_length: tokens per text when the trained model predicts (evaluation, serving), at most the
            encoder's position limit and never below max_length: a model fine-tuned on cut texts reads more of a
            long one.
        tracking_uri: MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db.
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; this step logs into it.
        train_data: the prepared (cleaned, tokenized) training split.
        validation_data: the prepared validation split.
        test_data: the prepared test split.
        preprocessing: what preprocessing decided: labels, cleaning, base model, max lengths.
    """
    from pathlib import Path

    import mlflow

    from textclf.data.cleaning import CleaningConfig
    from textclf.registry.tracking import resume_run
    from textclf.steps.preprocess import run_preprocess

    cleaning = CleaningConfig.pick(locals())
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
            truncation,
            predict_max_length,
        )
        mlflow.log_params({f"clean_{k}": v for k, v in cleaning.to_dict().items()})
        mlflow.log_dict(summary, "data/preprocess_summary.json")
    for name, artifact in outputs.items():
        artifact.metadata.update(summary[name])
