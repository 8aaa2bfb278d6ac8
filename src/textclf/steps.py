"""One function per pipeline step: read inputs from paths, call the core, write outputs, log to MLflow.

KFP components are thin adapters over these, so a step runs the same in a test, under kfp.local and
in a container.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from textclf.cleaning import CleaningConfig
from textclf.data import LABEL, TEXT, DataSource, data_report, ingest
from textclf.preprocess import LabelMap
from textclf.registry import PromotionDecision
from textclf.training import TrainingParams


@dataclass(frozen=True)
class Preprocessing:
    """What preprocessing decided and training, evaluation and serving must repeat."""

    labels: tuple[str, ...]
    cleaning: dict[str, bool]
    base_model: str
    max_length: int

    @property
    def label_map(self) -> LabelMap:
        return LabelMap(self.labels)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({**asdict(self), "label2id": self.label_map.label2id}, indent=2))

    @classmethod
    def load(cls, path: Path) -> Preprocessing:
        values = json.loads(Path(path).read_text())
        return cls(tuple(values["labels"]), values["cleaning"], values["base_model"], values["max_length"])


TRIGGER_TAG = "textclf.trigger"

# ---- drift report ----------------------------------------------------------------------------------


def copy_drift_report(uri: str, path: Path) -> None:
    """The monitor's report (a path, or a URL the monitor serves) copied into this run's artifact."""
    import fsspec

    try:
        with fsspec.open(uri, "rb") as source:
            path.write_bytes(source.read())
    except (FileNotFoundError, OSError) as error:
        raise FileNotFoundError(f"drift report {uri} cannot be read: {error}") from error


# ---- ingest -----------------------------------------------------------------------------------------


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

    from textclf.tracking import ensure_experiment

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
        return IngestOutcome(run.info.run_id, result.fingerprint, sizes, result.dropped)


# ---- preprocess -------------------------------------------------------------------------------------


def run_preprocess(
    split_paths: dict[str, Path],
    output_paths: dict[str, Path],
    preprocessing_path: Path,
    cleaning: CleaningConfig,
    base_model: str,
    max_length: int,
) -> dict[str, dict[str, int]]:
    """Clean, encode and tokenize every split; the label map comes from the training split only."""
    from textclf.modeling import load_tokenizer
    from textclf.preprocess import prepare_split

    splits = {name: pd.read_parquet(path) for name, path in split_paths.items()}
    label_map = LabelMap.from_labels(splits["train"][LABEL])
    tokenizer = load_tokenizer(base_model)
    summary = {}
    for name, frame in splits.items():
        prepared = prepare_split(frame, cleaning, tokenizer, label_map, max_length)
        prepared.frame.to_parquet(output_paths[name], index=False)
        summary[name] = {
            "rows": len(prepared.frame),
            "emptied_by_cleaning": prepared.emptied_by_cleaning,
            "truncated": prepared.truncated,
        }
    Preprocessing(label_map.labels, cleaning.to_dict(), base_model, max_length).save(preprocessing_path)
    return summary


# ---- tune -------------------------------------------------------------------------------------------


def run_tune(
    train_path: Path,
    validation_path: Path,
    preprocessing_path: Path,
    base_params: TrainingParams,
    trials: int,
    tune_max_train_rows: int,
    storage: str,
    data_fingerprint: str,
    work_dir: Path,
    history_path: Path,
    importance_path: Path,
) -> TrainingParams:
    """Search hyper-parameters on a sample of the training split; `trials=0` returns the given ones."""
    import mlflow

    from textclf.tuning import STUDY_NAME_FORMAT, run_study, stratified_sample, write_study_plots

    if trials == 0:
        message = "<html><body><p>Tuning skipped (trials=0): the configured parameters were used.</p></body></html>"
        history_path.write_text(message)
        importance_path.write_text(message)
        return base_params
    preprocessing = Preprocessing.load(preprocessing_path)
    train = stratified_sample(pd.read_parquet(train_path), tune_max_train_rows, base_params.seed)
    study_name = STUDY_NAME_FORMAT.format(
        fingerprint=data_fingerprint,
        finetune=base_params.finetune,
        base_model=Path(preprocessing.base_model).name,
    )
    result, study = run_study(
        preprocessing.base_model,
        train,
        pd.read_parquet(validation_path),
        preprocessing.label_map,
        base_params,
        trials,
        storage,
        study_name,
        work_dir,
        preprocessing.max_length,
    )
    write_study_plots(study, history_path, importance_path)
    mlflow.log_artifact(str(history_path), "tuning")
    mlflow.log_artifact(str(importance_path), "tuning")
    mlflow.log_params({f"tuned_{k}": v for k, v in result.best_params.to_dict().items()})
    mlflow.set_tags({"optuna_study": study_name, "optuna_completed_trials": str(result.completed_trials)})
    if result.best_value is not None:
        mlflow.log_metric("tuning_best_validation_accuracy", result.best_value)
    return result.best_params


# ---- train ------------------------------------------------------------------------------------------


def run_train(
    train_path: Path,
    validation_path: Path,
    preprocessing_path: Path,
    params: TrainingParams,
    data_fingerprint: str,
    work_dir: Path,
    model_dir: Path,
) -> dict[str, Any]:
    """Train with the final parameters and save the serving-ready model directory with its reference sample."""
    import mlflow

    from textclf.model_dir import ModelMetadata, save_model_directory
    from textclf.training import train_classifier

    preprocessing = Preprocessing.load(preprocessing_path)
    validation = pd.read_parquet(validation_path)
    mlflow.log_params(
        params.to_dict() | {"base_model": preprocessing.base_model, "max_length": preprocessing.max_length}
    )
    result = train_classifier(
        preprocessing.base_model,
        pd.read_parquet(train_path),
        validation,
        preprocessing.label_map,
        params,
        work_dir,
        preprocessing.max_length,
    )
    metrics = result.best_validation
    labels = preprocessing.labels
    best = result.validation_probabilities.argmax(axis=1)
    reference = pd.DataFrame(
        {
            TEXT: validation[TEXT],
            LABEL: validation[LABEL],
            "predicted_label": [labels[i] for i in best],
            "score": result.validation_probabilities.max(axis=1),
        }
    )
    summary = {
        "validation_accuracy": metrics["accuracy"],
        "validation_macro_f1": metrics["macro_f1"],
        "validation_ece": metrics["ece"],
        "epochs_run": len(result.history),
        "train_seconds": result.train_seconds,
        "train_samples_per_second": result.train_samples_per_second,
        "bf16": result.bf16,
    }
    metadata = ModelMetadata(
        base_model=preprocessing.base_model,
        finetune=params.finetune,
        max_length=preprocessing.max_length,
        labels=list(labels),
        cleaning=preprocessing.cleaning,
        training_params=params.to_dict(),
        metrics={"validation": metrics, "history": result.history, **summary},
        data_fingerprint=data_fingerprint,
    )
    save_model_directory(model_dir, result.model, result.tokenizer, metadata, reference)
    mlflow.log_metrics({k: float(v) for k, v in summary.items()})
    return summary


# ---- evaluate ---------------------------------------------------------------------------------------


@dataclass
class EvaluationPaths:
    evaluation_json: Path
    model_card: Path
    error_analysis: Path
    confusion_png: Path


def run_evaluate(
    model_dir: Path,
    raw_train_path: Path,
    test_path: Path,
    data_spec: str,
    data_fingerprint: str,
    model_name: str,
    split_sizes: dict[str, int],
    seed: int,
    paths: EvaluationPaths,
) -> dict[str, Any]:
    """Score the model on the held-back test split next to two baselines; write the report artifacts."""
    import mlflow

    from textclf.evaluation import (
        ModelCardInputs,
        confident_mistakes,
        error_analysis_html,
        model_card,
        plot_confusion_matrix,
        tfidf_baseline,
        untrained_baseline,
    )
    from textclf.metrics import classification_metrics
    from textclf.predict import TextClassifier
    from textclf.tracking import log_flat_metrics

    classifier = TextClassifier.load(model_dir)
    metadata = classifier.metadata
    label_map = LabelMap(tuple(metadata.labels))
    test = pd.read_parquet(test_path)
    # Test texts were cleaned by preprocessing; cleaning is idempotent, so the serving path applies as is.
    predictions = classifier.predict(test[TEXT].tolist())
    true_ids = label_map.encode(test[LABEL])
    metrics = classification_metrics(true_ids, predictions.probabilities, label_map.labels)
    cleaning = CleaningConfig.from_dict(metadata.cleaning)
    baselines = {
        "tfidf_logreg": tfidf_baseline(pd.read_parquet(raw_train_path), test, label_map, cleaning, seed),
        "base_model_untrained": untrained_baseline(
            metadata.base_model, test, label_map, cleaning, metadata.max_length, seed
        ),
    }
    mistakes = confident_mistakes(test[TEXT].tolist(), test[LABEL].tolist(), predictions.labels, predictions.scores)
    plot_confusion_matrix(metrics["confusion_matrix"], metrics["labels"], paths.confusion_png)
    paths.error_analysis.write_text(error_analysis_html(mistakes, paths.confusion_png.read_bytes()))
    card = model_card(
        ModelCardInputs(
            model_name=model_name,
            data_spec=data_spec,
            data_fingerprint=data_fingerprint,
            split_sizes=split_sizes,
            base_model=metadata.base_model,
            training_params={**metadata.training_params, "max_length": metadata.max_length},
            metrics=metrics,
            baselines=baselines,
            labels=list(label_map.labels),
        )
    )
    paths.model_card.write_text(card)
    evaluation = {"test": metrics, "baselines": baselines}
    paths.evaluation_json.write_text(json.dumps(evaluation, indent=2))
    log_flat_metrics({k: v for k, v in metrics.items() if k != "confusion_matrix"}, "test")
    for name, baseline in baselines.items():
        mlflow.log_metrics(
            {
                f"baseline_{name}_accuracy": baseline["accuracy"],
                f"baseline_{name}_macro_f1": baseline["macro_f1"],
            }
        )
    mlflow.log_dict(evaluation, "evaluation/evaluation.json")
    mlflow.log_text(card, "evaluation/model_card.md")
    mlflow.log_artifact(str(paths.confusion_png), "evaluation")
    mlflow.log_text(mistakes.to_csv(index=False), "evaluation/confident_mistakes.csv")
    return evaluation


# ---- register ---------------------------------------------------------------------------------------


def run_register(model_dir: Path, evaluation_path: Path, run_id: str, model_name: str, data_fingerprint: str) -> str:
    """Log the model directory and register it as the `challenger` (once per run); returns the version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.model_dir import load_metadata
    from textclf.registry import register_version, version_tags
    from textclf.tracking import git_commit

    test_metrics = json.loads(evaluation_path.read_text())["test"]
    metadata = load_metadata(model_dir)
    mlflow.log_artifacts(str(model_dir), "model")
    source = f"{mlflow.get_run(run_id).info.artifact_uri}/model"
    tags = version_tags(test_metrics, data_fingerprint, git_commit(), metadata.training_params)
    version = register_version(MlflowClient(), model_name, run_id, source, tags, f"data {data_fingerprint}")
    mlflow.set_tags({"registered_model": model_name, "registered_version": str(version.version)})
    return str(version.version)


def run_gate(
    model_name: str,
    version: str,
    min_accuracy_gain: float,
    max_class_f1_drop: float,
    drift_window_data: str = "",
) -> PromotionDecision:
    """Compare the challenger with the champion on their registered test metrics (the frozen test split) and,
    for a run started by drift, on the labelled drift window too; log inputs and decision."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.registry import PromotionPolicy, current_champion, decide_promotion, score_of

    client = MlflowClient()
    champion = current_champion(client, model_name)
    window_accuracy: dict[str, float] = {}
    if drift_window_data and champion is not None:
        from textclf.evaluate_any import evaluate_model_on_data

        window = DataSource(drift_window_data)
        for candidate in (version, str(champion.version)):
            metrics = evaluate_model_on_data(f"models:/{model_name}/{candidate}", window, mlflow.get_tracking_uri())
            window_accuracy[candidate] = metrics["accuracy"]
        mlflow.log_metrics(
            {
                "drift_window_accuracy": window_accuracy[version],
                "drift_window_champion_accuracy": window_accuracy[str(champion.version)],
            }
        )
    decision = decide_promotion(
        score_of(client.get_model_version(model_name, version), window_accuracy.get(version)),
        score_of(champion, window_accuracy.get(str(champion.version))) if champion is not None else None,
        PromotionPolicy(min_accuracy_gain, max_class_f1_drop),
    )
    mlflow.log_dict(decision.to_dict(), "registry/promotion_gate.json")
    mlflow.set_tags(
        {
            "promotion_decision": "promote" if decision.promote else "keep_champion",
            "promotion_reason": decision.reason,
        }
    )
    return decision


def run_promote(model_name: str, version: str) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.registry import promote

    promote(MlflowClient(), model_name, version)
    mlflow.set_tag("champion_version", version)
