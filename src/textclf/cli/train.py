"""`textclf run`, `compile`, `evaluate` and `demo-data`: the training pipeline and its models."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from textclf.cli.common import configure_logging, console, parse_sets
from textclf.config import PipelineConfig
from textclf.names import LOCAL_MONITOR_URL, REGISTERED_MODEL_NAME
from textclf.train.cross_validation import DEFAULT_FOLDS
from textclf.train.modeling import FULL_FINETUNE_MAX_PARAMETERS

FINETUNE_HELP = f"'auto' (full up to {FULL_FINETUNE_MAX_PARAMETERS:,} parameters, else LoRA), 'lora' or 'full'"
WORKERS_HELP = PipelineConfig.groups()["distributed"].model_fields["workers"].description
SET_HELP = "any configuration field, as KEY=VALUE; a group's field as GROUP.FIELD=VALUE (training.learning_rate=1e-4)"
TUNE_PARALLELISM_HELP = PipelineConfig.groups()["tuning"].model_fields["parallelism"].description


def run(
    data: Annotated[
        str | None, typer.Option(help="'demo[:domain]', 'hf:<id>', or a CSV/JSONL/Parquet path or URL")
    ] = None,
    text_column: Annotated[str | None, typer.Option(help="column holding the text")] = None,
    label_column: Annotated[str | None, typer.Option(help="column holding the label")] = None,
    base_model: Annotated[str | None, typer.Option(help="Hub id or local path of the encoder")] = None,
    finetune: Annotated[str | None, typer.Option(help=FINETUNE_HELP)] = None,
    trials: Annotated[int | None, typer.Option(help="Optuna trials; 0 skips tuning")] = None,
    epochs: Annotated[int | None, typer.Option(help="maximum training epochs (0 = auto: more on small data)")] = None,
    workers: Annotated[int | None, typer.Option(help=WORKERS_HELP)] = None,
    tune_parallelism: Annotated[int | None, typer.Option(help=TUNE_PARALLELISM_HELP)] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of configuration fields")] = None,
    set_: Annotated[list[str], typer.Option("--set", help=SET_HELP)] = [],  # noqa: B006
    host: Annotated[str | None, typer.Option(help="Kubeflow Pipelines endpoint: compile and submit there")] = None,
    workdir: Annotated[Path, typer.Option(help="where the local run keeps MLflow, Optuna and artifacts")] = Path("."),
    wait: Annotated[bool, typer.Option(help="with --host: wait for the run to finish")] = False,
    timeout: Annotated[int, typer.Option(help="with --host --wait: seconds to wait")] = 3600,
    unless_champion: Annotated[
        bool,
        typer.Option(
            help="do nothing when the registered model already has a champion (Compose's training service: a "
            "restarted stack keeps its model instead of training again)"
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at INFO level")] = False,
) -> None:
    """Run the training pipeline: locally with kfp.local, or on a cluster with --host."""
    from pydantic import ValidationError

    from textclf.config import load_config

    configure_logging(verbose)
    overrides = {
        "data": data,
        "dataset.text_column": text_column,
        "dataset.label_column": label_column,
        "encoder.base_model": base_model,
        "training.finetune": finetune,
        "tuning.trials": trials,
        "training.epochs": epochs,
        "distributed.workers": workers,
        "tuning.parallelism": tune_parallelism,
        **parse_sets(set_),
    }
    try:
        settings = load_config(config, overrides)
    except (ValidationError, ValueError) as error:
        console.print(f"[red]invalid configuration:[/red] {error}")
        raise typer.Exit(2) from error
    if host:
        from textclf.pipelines.runner import PipelineRunFailed, submit

        try:
            run_id = submit(
                settings,
                host,
                settings.experiment_name,
                wait,
                timeout,
                announce=lambda run_id: console.print(f"submitted run [bold]{run_id}[/bold] to {host}"),
            )
        except PipelineRunFailed as error:
            console.print(f"[red]pipeline failed:[/red] {error}")
            raise typer.Exit(1) from error
        if wait:
            console.print(f"run [bold]{run_id}[/bold] succeeded")
        return
    from textclf.pipelines.runner import run_local

    workdir = workdir.resolve()
    resolved = settings.resolved(workdir)
    if unless_champion and (champion := _champion_version(resolved)):
        console.print(
            f"{resolved.registered_model_name} already has a champion (v{champion} at {resolved.tracking_uri}): "
            "not training (drop --unless-champion to train anyway)"
        )
        return
    console.print(f"running the training pipeline locally (MLflow: {resolved.tracking_uri})")
    if verbose:
        try:
            run_local(resolved, workdir / "pipeline_root")
        except RuntimeError as error:
            console.print(f"[red]pipeline failed:[/red] {error}")
            raise typer.Exit(1) from error
        _print_run_summary(resolved.tracking_uri, resolved.experiment_name, resolved.registered_model_name)
        return
    from textclf.cli.progress import ANSI_ESCAPE, failure_report, quiet_run

    log_path = workdir / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    console.print(f"step output: {log_path} (--verbose prints it here)", highlight=False)
    try:
        with quiet_run(console, log_path) as steps:
            run_local(resolved, workdir / "pipeline_root")
    except RuntimeError as error:
        console.print(f"[red]pipeline failed:[/red] {ANSI_ESCAPE.sub('', str(error))}")
        console.print(failure_report(steps.steps[-1] if steps.steps else None, log_path), soft_wrap=True)
        raise typer.Exit(1) from error
    _print_run_summary(resolved.tracking_uri, resolved.experiment_name, resolved.registered_model_name, log_path)


def _champion_version(settings: PipelineConfig) -> str | None:
    from mlflow.tracking import MlflowClient

    from textclf.registry.versions import current_champion

    champion = current_champion(
        MlflowClient(settings.tracking_uri, settings.tracking_uri), settings.registered_model_name
    )
    return None if champion is None else str(champion.version)


def cv(
    data: Annotated[
        str | None, typer.Option(help="'demo[:domain]', 'hf:<id>', or a CSV/JSONL/Parquet path or URL")
    ] = None,
    folds: Annotated[int, typer.Option(help="number of stratified folds (at least 2)")] = DEFAULT_FOLDS,
    text_column: Annotated[str | None, typer.Option(help="column holding the text")] = None,
    label_column: Annotated[str | None, typer.Option(help="column holding the label")] = None,
    base_model: Annotated[str | None, typer.Option(help="Hub id or local path of the encoder")] = None,
    finetune: Annotated[str | None, typer.Option(help=FINETUNE_HELP)] = None,
    epochs: Annotated[int | None, typer.Option(help="maximum training epochs (0 = auto: more on small data)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of configuration fields")] = None,
    set_: Annotated[list[str], typer.Option("--set", help=SET_HELP)] = [],  # noqa: B006
    workdir: Annotated[Path, typer.Option(help="where MLflow keeps the runs (./mlflow.db by default)")] = Path("."),
    output: Annotated[Path | None, typer.Option(help="also write the scores as JSON here")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at INFO level")] = False,
) -> None:
    """k-fold cross-validation of the training recipe on a whole dataset: one model per stratified fold, mean
    and standard deviation of accuracy and macro F1, per fold and per class, in MLflow as a parent run with a
    nested run per fold."""
    import tempfile

    from pydantic import ValidationError

    from textclf.config import load_config
    from textclf.data.sources import LABEL, DataSource, DataValidationError
    from textclf.registry.tracking import ensure_experiment
    from textclf.steps.cross_validate import prepare_source, run_cross_validation
    from textclf.train.cross_validation import check_fold_count, check_folds
    from textclf.train.trainer import TrainingParams

    configure_logging(verbose)
    overrides = {
        "data": data,
        "dataset.text_column": text_column,
        "dataset.label_column": label_column,
        "encoder.base_model": base_model,
        "training.finetune": finetune,
        "training.epochs": epochs,
        **parse_sets(set_),
    }
    try:
        settings = load_config(config, overrides).resolved(workdir.resolve())
        check_fold_count(folds)
        reading, encoder = settings.dataset, settings.encoder
        prepared, preprocessing = prepare_source(
            DataSource(settings.data, reading.text_column, reading.label_column, reading.hf_split, reading.hf_config),
            settings.cleaning,
            encoder.base_model,
            encoder.max_length,
            encoder.truncation,
            encoder.predict_max_length,
        )
        check_folds(prepared[LABEL].tolist(), folds)
    except (ValidationError, DataValidationError, FileNotFoundError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    ensure_experiment(settings.experiment_name, settings.tracking_uri)
    import mlflow

    mlflow.set_experiment(settings.experiment_name)
    console.print(
        f"cross-validating {settings.encoder.base_model} on {len(prepared):,} rows of {settings.data} in {folds} folds "
        f"(MLflow: {settings.tracking_uri})"
    )

    def announce(fold, scores: dict) -> None:
        console.print(
            f"fold {fold.number}/{folds}: accuracy {scores['accuracy']:.4f}, macro F1 {scores['macro_f1']:.4f} "
            f"({scores['train_rows']:,} training rows, {scores['train_seconds']:.0f} s)"
        )

    with tempfile.TemporaryDirectory() as work_dir:
        result = run_cross_validation(
            prepared,
            preprocessing,
            TrainingParams.of(settings.training.model_dump(), settings.seed),
            folds,
            settings.dataset.validation_fraction,
            Path(work_dir),
            announce,
            show_progress=verbose,
        )
    if output is not None:
        output.write_text(json.dumps(result, indent=2))
    _print_cross_validation(result)


def _print_cross_validation(result: dict) -> None:
    summary = result["summary"]
    table = Table(title=f"{summary['folds']}-fold cross-validation (MLflow run {result['mlflow_run_id']})")
    for column in ("fold", "held-out rows", "epochs", "accuracy", "macro F1"):
        table.add_column(column, justify="right")
    for fold in result["folds"]:
        table.add_row(
            str(fold["fold"]),
            f"{fold['test_rows']:,}",
            str(fold["epochs_run"]),
            f"{fold['accuracy']:.4f}",
            f"{fold['macro_f1']:.4f}",
        )
    accuracy, macro_f1 = summary["accuracy"], summary["macro_f1"]
    table.add_row(
        "mean ± std",
        "",
        "",
        f"{accuracy['mean']:.4f} ± {accuracy['std']:.4f}",
        f"{macro_f1['mean']:.4f} ± {macro_f1['std']:.4f}",
    )
    console.print(table)
    classes = Table(title="per class F1")
    classes.add_column("class")
    classes.add_column("mean ± std", justify="right")
    for label, f1 in summary["per_class_f1"].items():
        classes.add_row(label, f"{f1['mean']:.4f} ± {f1['std']:.4f}")
    console.print(classes)


def _print_run_summary(tracking_uri: str, experiment_name: str, model_name: str, log_path: Path | None = None) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.registry.tracking import configure
    from textclf.registry.versions import current_champion
    from textclf.steps.ingest import RARE_CLASSES_TAG

    configure(tracking_uri)
    runs = mlflow.search_runs(
        experiment_names=[experiment_name],
        filter_string="tags.`textclf.pipeline` = 'training'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        return
    latest = runs[0]
    champion = current_champion(MlflowClient(), model_name)
    table = Table(title="textclf run")
    table.add_column("what")
    table.add_column("value")
    metrics = latest.data.metrics
    table.add_row("MLflow run", latest.info.run_id)
    for name in (
        "test_accuracy",
        "test_macro_f1",
        "baseline_tfidf_logreg_accuracy",
        "baseline_base_model_untrained_accuracy",
        "behaviour_max_failure_rate",
        "train_samples_per_second",
    ):
        if name in metrics:
            table.add_row(name, f"{metrics[name]:.4f}")
    if "cv_accuracy_mean" in metrics:
        table.add_row(
            "cross-validation accuracy", f"{metrics['cv_accuracy_mean']:.4f} ± {metrics['cv_accuracy_std']:.4f}"
        )
    tags = latest.data.tags
    if RARE_CLASSES_TAG in tags:
        table.add_row("[yellow]rare classes[/yellow]", tags[RARE_CLASSES_TAG])
    table.add_row("registered", f"{model_name} v{tags.get('registered_version', '?')}")
    table.add_row("gate", f"{tags.get('promotion_decision', '?')}: {tags.get('promotion_reason', '')}")
    table.add_row("champion", f"v{champion.version}" if champion else "none")
    screen = Console()
    screen.print(table)
    # Unwrapped, so a path or a command can be copied whole.
    if "deploy_outcome" in tags:
        screen.print(f"deploy: {tags['deploy_outcome']}", soft_wrap=True, highlight=False)
    if log_path is not None:
        screen.print(f"log: {log_path}", soft_wrap=True, highlight=False)


def compile_(
    output: Annotated[Path | None, typer.Option(help="where to write the pipeline spec")] = None,
) -> None:
    """Compile the training pipeline to its YAML spec; without --output, also regenerate the committed spec and
    each component folder's README."""
    from textclf.pipelines.runner import COMPILED_PIPELINE, compile_pipeline

    console.print(f"wrote {compile_pipeline(output or COMPILED_PIPELINE)}")
    if output is None:
        from textclf.components.readme import write_readmes

        console.print(f"wrote {len(write_readmes())} component READMEs")


def evaluate(
    model: Annotated[
        str, typer.Option(help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model, or a directory")
    ],
    data: Annotated[str, typer.Option(help="CSV/JSONL/Parquet path or URL, 'hf:<id>' or 'demo[:domain]'")],
    text_column: Annotated[str, typer.Option(help="column holding the text")] = "text",
    label_column: Annotated[str, typer.Option(help="column holding the label")] = "label",
    hf_split: Annotated[str, typer.Option(help="split of a Hugging Face dataset")] = "test",
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow URI for models:/ and runs:/")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as one JSON object")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Evaluate any model on any labelled data."""
    from textclf.data.sources import DataSource, DataValidationError
    from textclf.evaluate.any_model import evaluate_model_on_data
    from textclf.registry.tracking import default_tracking_uri

    configure_logging(verbose)
    try:
        metrics = evaluate_model_on_data(
            model,
            DataSource(data, text_column, label_column, hf_split),
            tracking_uri or default_tracking_uri(),
        )
    except (DataValidationError, FileNotFoundError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    if as_json:
        print(json.dumps(metrics))
        return
    table = Table(title=f"{model} on {data}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ("accuracy", "macro_f1", "weighted_f1", "ece", "samples"):
        table.add_row(name, f"{metrics[name]:.4f}" if isinstance(metrics[name], float) else str(metrics[name]))
    for label, scores in metrics["per_class"].items():
        table.add_row(f"F1 {label}", f"{scores['f1']:.4f}")
    Console().print(table)


def promote(
    version: Annotated[str, typer.Argument(help="the registered version to make champion")],
    model_name: Annotated[str, typer.Option(help="MLflow registered model")] = REGISTERED_MODEL_NAME,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow URI; default MLFLOW_TRACKING_URI or ./mlflow.db")
    ] = None,
    serving_url: Annotated[
        str | None, typer.Option(help="a running `textclf serve` to switch to it (sends TEXTCLF_SERVE_ADMIN_TOKEN)")
    ] = None,
    approved_by: Annotated[str | None, typer.Option(help="who approves; default $USER")] = None,
    monitor_url: Annotated[
        str, typer.Option(help="the monitor whose shadow window a version held for one must qualify")
    ] = LOCAL_MONITOR_URL,
) -> None:
    """Make a version champion by hand: what a challenger held by `require_approval` or for its shadow window
    (`min_shadow_texts`) waits for. A version held for its shadow window is promoted only once the monitor's
    comparison of its latest `min_shadow_texts` shadowed texts meets the conditions the gate recorded."""
    import os

    from mlflow.tracking import MlflowClient

    from textclf.cli.monitor import MonitorUnreachable, fetch_shadow_comparison
    from textclf.registry.gate import shadow_refusal
    from textclf.registry.serving_state import approve, champion_version, record_deploy, shadow_conditions
    from textclf.registry.tracking import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(uri, uri)
    try:
        conditions = shadow_conditions(client, model_name, version)
        if conditions is not None:
            comparison = fetch_shadow_comparison(monitor_url, version, conditions.min_shadow_texts)
            refusal = shadow_refusal(comparison, version, champion_version(client, model_name), conditions)
            if refusal:
                console.print(f"[red]not promoted:[/red] {refusal} (`textclf compare` shows the window)")
                raise typer.Exit(2)
            console.print(f"shadow window qualifies: {comparison['texts']} texts, agreement {comparison['agreement']}")
    except (LookupError, MonitorUnreachable) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    try:
        console.print(approve(client, model_name, version, approved_by or os.environ.get("USER", "unknown")))
    except LookupError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    if serving_url:
        from textclf.deploy.local_server import deploy_locally

        outcome = deploy_locally(serving_url, model_name, version, uri)
        record_deploy(client, model_name, version, "serving" if outcome.served else "not_served", outcome.message)
        console.print(outcome.message)


def demo_data(
    domain: Annotated[str, typer.Option(help="movie_reviews, tweets, amazon_reviews, nyt_editorials or all")] = "all",
) -> None:
    """Fetch and cache the embedded demo dataset (VADER ground truth, Hutto & Gilbert 2014)."""
    from textclf.data.demo import CITATION, cache_dir, load_demo

    with console.status("fetching the VADER ground-truth sets from the vaderSentiment sdist"):
        frame = load_demo(domain)
    console.print(f"{len(frame):,} labelled texts cached under {cache_dir() / 'demo'}")
    console.print(frame.groupby(["domain", "label"]).size().to_string())
    console.print(f"source: {CITATION}")
