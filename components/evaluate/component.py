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
    checks: dict,
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
        cross_validation: the cross-validate step's scores (empty when cv_folds is 0), for the model card.
        split_sizes: rows per split, from ingest.
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

    from textclf.evaluate.evaluation import QualityChecks
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
            QualityChecks.model_validate(checks).behaviour_tests,
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
