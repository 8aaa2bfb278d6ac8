from typing import NamedTuple

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from textclf.components import textclf_component


@textclf_component
def evaluate(
    model: Input[Model],
    train_split: Input[Dataset],
    test_data: Input[Dataset],
    data: str,
    data_fingerprint: str,
    registered_model_name: str,
    split_sizes: dict,
    seed: int,
    tracking_uri: str,
    mlflow_run_id: str,
    metrics: Output[Metrics],
    confusion_matrix: Output[ClassificationMetrics],
    confusion_matrix_png: Output[Artifact],
    error_analysis: Output[HTML],
    model_card: Output[Markdown],
    evaluation: Output[Artifact],
) -> NamedTuple("EvaluateOutputs", accuracy=float, macro_f1=float, tfidf_accuracy=float):
    """Test-split metrics, baselines, confusion matrix, confident mistakes and the model card."""
    from collections import namedtuple
    from pathlib import Path

    from textclf.steps import EvaluationPaths, run_evaluate
    from textclf.tracking import resume_run

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
        )
    test = result["test"]
    for name in ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall", "ece"):
        metrics.log_metric(name, test[name])
    for name, baseline in result["baselines"].items():
        metrics.log_metric(f"{name}_accuracy", baseline["accuracy"])
    confusion_matrix.log_confusion_matrix(test["labels"], test["confusion_matrix"])
    tfidf = result["baselines"]["tfidf_logreg"]["accuracy"]
    outputs = namedtuple("EvaluateOutputs", ["accuracy", "macro_f1", "tfidf_accuracy"])
    return outputs(test["accuracy"], test["macro_f1"], tfidf)
