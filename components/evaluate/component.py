from typing import NamedTuple

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from textclf.components import textclf_component


@textclf_component
def evaluate(
    model: Input[Model],
    train_split: Input[Dataset],
    test_data: Input[Dataset],
    cross_validation: Input[Artifact],
    data: str,
    data_fingerprint: str,
    registered_model_name: str,
    split_sizes: dict,
    seed: int,
    behaviour_tests: str,
    tracking_uri: str,
    mlflow_run_id: str,
    metrics: Output[Metrics],
    confusion_matrix: Output[ClassificationMetrics],
    confusion_matrix_png: Output[Artifact],
    error_analysis: Output[HTML],
    model_card: Output[Markdown],
    evaluation: Output[Artifact],
) -> NamedTuple("EvaluateOutputs", accuracy=float, macro_f1=float, tfidf_accuracy=float):
    """Test-split metrics, baselines, confusion matrix, confident mistakes and the model card.

    Args:
        model: the serving-ready model directory (the model-directory contract).
        train_split: the raw training split (ingest's output).
        test_data: the prepared test split.
        cross_validation: the cross-validate step's scores (empty when cv_folds is 0), for the model card.
        data: 'demo[:domain]', 'hf:<dataset id>', or a CSV/JSONL/Parquet path or URL.
        data_fingerprint: content hash of the ingested (text, label) pairs.
        registered_model_name: MLflow registered model.
        split_sizes: rows per split, from ingest.
        seed: seed for splitting, initialisation, data order and tuning.
        behaviour_tests: behavioural tests to run: auto (the built-in sentiment suite on positive/negative
            labels), none, a built-in suite ['sentiment'], a YAML file's path or the YAML text.
        tracking_uri: MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db.
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; this step logs into it.
        metrics: test-split metrics and behavioural-test failure rates for the KFP UI.
        confusion_matrix: the test split's confusion matrix for the KFP UI.
        confusion_matrix_png: the confusion matrix as a PNG.
        error_analysis: confusion matrix, reliability diagram and the most confident mistakes (HTML).
        model_card: the model card (Markdown).
        evaluation: test metrics and baselines (JSON).
    """
    import json
    from collections import namedtuple
    from pathlib import Path

    from textclf.registry.tracking import resume_run
    from textclf.steps.evaluate import EvaluationPaths, behaviour_metrics, run_evaluate

    with resume_run(tracking_uri, mlflow_run_id):
        result = run_evaluate(
            Path(model.path),
            Path(train_split.path),
            Path(test_data.path),
            data,
            data_fingerprint,
            registered_model_name,
            split_sizes,
            seed,
            EvaluationPaths(
                Path(evaluation.path),
                Path(model_card.path),
                Path(error_analysis.path),
                Path(confusion_matrix_png.path),
            ),
            behaviour_tests,
            json.loads(Path(cross_validation.path).read_text()),
        )
    test = result["test"]
    for name in ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall", "ece"):
        metrics.log_metric(name, test[name])
    for name, baseline in result["baselines"].items():
        metrics.log_metric(f"{name}_accuracy", baseline["accuracy"])
    if result["behaviour"] is not None:
        for name, value in behaviour_metrics(result["behaviour"]).items():
            metrics.log_metric(name, value)
    confusion_matrix.log_confusion_matrix(test["labels"], test["confusion_matrix"])
    tfidf = result["baselines"]["tfidf_logreg"]["accuracy"]
    outputs = namedtuple("EvaluateOutputs", ["accuracy", "macro_f1", "tfidf_accuracy"])
    return outputs(test["accuracy"], test["macro_f1"], tfidf)
