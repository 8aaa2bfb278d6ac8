"""The `textclf` command line: the user's door to the pipeline; the Makefile calls it too."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Transformer text classification: train, evaluate, register and promote.", no_args_is_help=True)
console = Console(stderr=True)


def _configure_logging(verbose: bool) -> None:
    """Quiet by default; structured key=value lines when asked for."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="time=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        logging.getLogger("alembic").setLevel(logging.ERROR)


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise typer.BadParameter(f"--set takes KEY=VALUE, got {pair!r}")
        values[key.strip().replace("-", "_")] = value
    return values


@app.command()
def run(
    data: Annotated[
        str | None, typer.Option(help="'demo[:domain]', 'hf:<id>', or a CSV/JSONL/Parquet path or URL")
    ] = None,
    text_column: Annotated[str | None, typer.Option(help="column holding the text")] = None,
    label_column: Annotated[str | None, typer.Option(help="column holding the label")] = None,
    base_model: Annotated[str | None, typer.Option(help="Hub id or local path of the encoder")] = None,
    finetune: Annotated[str | None, typer.Option(help="'lora' or 'full'")] = None,
    trials: Annotated[int | None, typer.Option(help="Optuna trials; 0 skips tuning")] = None,
    epochs: Annotated[int | None, typer.Option(help="maximum training epochs")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of configuration fields")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="any configuration field, as KEY=VALUE")] = [],  # noqa: B006
    host: Annotated[str | None, typer.Option(help="Kubeflow Pipelines endpoint: compile and submit there")] = None,
    workdir: Annotated[Path, typer.Option(help="where the local run keeps MLflow, Optuna and artifacts")] = Path("."),
    wait: Annotated[bool, typer.Option(help="with --host: wait for the run to finish")] = False,
    timeout: Annotated[int, typer.Option(help="with --host --wait: seconds to wait")] = 3600,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at INFO level")] = False,
) -> None:
    """Run the training pipeline: locally with kfp.local, or on a cluster with --host."""
    from pydantic import ValidationError

    from textclf.config import load_config

    _configure_logging(verbose)
    overrides = {
        "data": data,
        "text_column": text_column,
        "label_column": label_column,
        "base_model": base_model,
        "finetune": finetune,
        "trials": trials,
        "epochs": epochs,
        **_parse_sets(set_),
    }
    try:
        settings = load_config(config, overrides)
    except (ValidationError, ValueError) as error:
        console.print(f"[red]invalid configuration:[/red] {error}")
        raise typer.Exit(2) from error
    if host:
        from textclf.pipelines.runner import submit

        run_id = submit(settings, host, settings.experiment_name, wait, timeout)
        console.print(f"submitted run [bold]{run_id}[/bold] to {host}")
        return
    from textclf.pipelines.runner import run_local

    workdir = workdir.resolve()
    resolved = settings.resolved(workdir)
    console.print(f"running the training pipeline locally (MLflow: {resolved.tracking_uri})")
    try:
        run_local(resolved, workdir / "pipeline_root")
    except RuntimeError as error:
        console.print(f"[red]pipeline failed:[/red] {error}")
        raise typer.Exit(1) from error
    _print_run_summary(resolved.tracking_uri, resolved.experiment_name, resolved.registered_model_name)


def _print_run_summary(tracking_uri: str, experiment_name: str, model_name: str) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.registry import current_champion
    from textclf.tracking import configure

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
        "train_samples_per_second",
    ):
        if name in metrics:
            table.add_row(name, f"{metrics[name]:.4f}")
    tags = latest.data.tags
    table.add_row("registered", f"{model_name} v{tags.get('registered_version', '?')}")
    table.add_row("gate", f"{tags.get('promotion_decision', '?')}: {tags.get('promotion_reason', '')}")
    table.add_row("champion", f"v{champion.version}" if champion else "none")
    if "deploy_outcome" in tags:
        table.add_row("deploy", tags["deploy_outcome"])
    Console().print(table)


@app.command("compile")
def compile_(
    output: Annotated[Path | None, typer.Option(help="where to write the pipeline spec")] = None,
) -> None:
    """Compile the training pipeline to its YAML spec."""
    from textclf.pipelines.runner import COMPILED_PIPELINE, compile_pipeline

    console.print(f"wrote {compile_pipeline(output or COMPILED_PIPELINE)}")


@app.command()
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
    from textclf.data import DataSource, DataValidationError
    from textclf.evaluate_any import evaluate_model_on_data
    from textclf.tracking import default_tracking_uri

    _configure_logging(verbose)
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


@app.command()
def serve(
    model: Annotated[
        str | None,
        typer.Option(
            help="models:/NAME@ALIAS (default models:/textclf@champion), models:/NAME/VERSION, or a directory"
        ),
    ] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (v1, v2 REST, /predict, /metrics); default 8080")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="v2 gRPC port; 0 turns gRPC off; default 8081")] = None,
    host: Annotated[str | None, typer.Option(help="interface to listen on; default 127.0.0.1")] = None,
    model_name: Annotated[str | None, typer.Option(help="name in the URLs (/v2/models/NAME); default textclf")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow URI for models:/ and runs:/")] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="most texts one forward pass takes")] = None,
    max_wait_ms: Annotated[float | None, typer.Option(help="how long a batch waits for more requests")] = None,
    request_logger_url: Annotated[
        str | None, typer.Option(help="send requests and responses as CloudEvents here (the monitor)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of serving configuration fields")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="any serving configuration field, as KEY=VALUE")] = [],  # noqa: B006
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at INFO level")] = False,
) -> None:
    """Serve a model with KServe's model server: v1, v2 REST and gRPC, /predict, /metrics."""
    from pydantic import ValidationError

    from textclf.config import load_serving_config

    overrides = {
        "model": model,
        "http_port": port,
        "grpc_port": grpc_port,
        "host": host,
        "model_name": model_name,
        "tracking_uri": tracking_uri,
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "request_logger_url": request_logger_url,
        **_parse_sets(set_),
    }
    try:
        settings = load_serving_config(config, overrides)
    except (ValidationError, ValueError) as error:
        console.print(f"[red]invalid serving configuration:[/red] {error}")
        raise typer.Exit(2) from error
    from textclf.serving.server import serve as run_server

    if not verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    console.print(f"loading {settings.model}; serving on http://{settings.host}:{settings.http_port}")
    from mlflow.exceptions import MlflowException

    try:
        run_server(settings, verbose)
    except (FileNotFoundError, OSError, MlflowException) as error:
        console.print(f"[red]cannot serve:[/red] {error}")
        raise typer.Exit(1) from error


@app.command()
def monitor(
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL of the store; default sqlite in --workdir")
    ] = None,
    workdir: Annotated[str | None, typer.Option(help="reports, retraining data and logs; default ./monitor")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port; default 8000")] = None,
    host: Annotated[str | None, typer.Option(help="interface to listen on; default 127.0.0.1")] = None,
    check_interval: Annotated[
        float | None, typer.Option(help="seconds between scheduled drift checks; 0 = only on demand")
    ] = None,
    training_config: Annotated[str | None, typer.Option(help="YAML of the training run to repeat")] = None,
    training_workdir: Annotated[str | None, typer.Option(help="workdir of the original `textclf run`")] = None,
    kfp_host: Annotated[str | None, typer.Option(help="retrain on this Kubeflow Pipelines endpoint")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow URI of the registry")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of monitor configuration fields")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="any monitor configuration field, as KEY=VALUE")] = [],  # noqa: B006
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at INFO level")] = False,
) -> None:
    """Run the monitoring service: request-log sink, feedback, scheduled drift checks, retraining."""
    from pydantic import ValidationError

    from textclf.config import load_monitor_config

    overrides = {
        "database_url": database_url,
        "workdir": workdir,
        "port": port,
        "host": host,
        "check_interval_seconds": check_interval,
        "training_config": training_config,
        "training_workdir": training_workdir,
        "kfp_host": kfp_host,
        "tracking_uri": tracking_uri,
        **_parse_sets(set_),
    }
    try:
        settings = load_monitor_config(config, overrides)
    except (ValidationError, ValueError) as error:
        console.print(f"[red]invalid monitor configuration:[/red] {error}")
        raise typer.Exit(2) from error
    from textclf.monitoring.server import serve as run_monitor

    if not verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    console.print(f"monitoring on http://{settings.host}:{settings.port} (events: /events, feedback: /feedback)")
    run_monitor(settings, verbose)


@app.command()
def drift(
    reference: Annotated[
        str, typer.Option(help="a CSV/JSONL/Parquet table, or a model (models:/NAME@ALIAS) whose reference sample")
    ],
    current: Annotated[str, typer.Option(help="a table with 'text' (and predicted_label, score, label)")],
    model: Annotated[str, typer.Option(help="model for predictions and embeddings when the reference is a table")] = "",
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow URI for models:/ and runs:/")] = None,
    report_dir: Annotated[Path | None, typer.Option(help="also save the HTML and JSON report here")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML of monitor fields (thresholds, policy)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the decision and scores as one JSON object")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Compare two datasets: the drift decision and every check's score, as the monitor computes them."""
    from textclf.config import load_monitor_config
    from textclf.data import DataValidationError
    from textclf.drift_check import compare_datasets
    from textclf.tracking import default_tracking_uri

    _configure_logging(verbose)
    try:
        decision = compare_datasets(
            reference,
            current,
            tracking_uri or default_tracking_uri(),
            model,
            load_monitor_config(config),
            report_dir,
        )
    except (DataValidationError, FileNotFoundError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    if as_json:
        print(json.dumps(decision))
        return
    table = Table(title=f"{decision['decision']}: {decision['reason']}")
    for column in ("check", "score", "threshold", "drift"):
        table.add_column(column)
    for name, score in decision["scores"].items():
        table.add_row(name, f"{score['score']:.4g}", f"{score['threshold']:.4g}", "yes" if score["drifted"] else "")
    Console().print(table)


@app.command()
def check(
    monitor_url: Annotated[str, typer.Option(help="the monitoring service")] = "http://127.0.0.1:8000",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the check")] = 600,
) -> None:
    """Ask the monitoring service to run a drift check now (the CronJob's command); print its decision."""
    import httpx

    try:
        response = httpx.post(f"{monitor_url.rstrip('/')}/checks", timeout=timeout)
    except httpx.HTTPError as error:
        console.print(f"[red]cannot reach the monitor at {monitor_url}:[/red] {error}")
        raise typer.Exit(1) from error
    if response.status_code != 200:
        console.print(f"[red]check failed ({response.status_code}):[/red] {response.text}")
        raise typer.Exit(1)
    print(json.dumps(response.json()))


@app.command("demo-drift")
def demo_drift(
    workdir: Annotated[Path, typer.Option(help="where the demo keeps everything")] = Path("demo-drift"),
    train_rows: Annotated[int, typer.Option(help="training-domain rows to train on (0 = all but the traffic)")] = 3000,
    traffic: Annotated[int, typer.Option(help="texts sent per phase (the monitor's window)")] = 300,
    epochs: Annotated[int, typer.Option(help="training epochs of both runs")] = 2,
    finetune: Annotated[str, typer.Option(help="'full' or 'lora', for both runs")] = "full",
    check_interval: Annotated[float, typer.Option(help="seconds between the monitor's scheduled checks")] = 5,
) -> None:
    """The whole loop locally: train, serve, in-domain traffic (no retraining), shifted traffic with feedback
    (one retraining run, promoted only if better, served)."""
    from textclf.monitoring.demo import DemoSettings, run_drift_demo

    result = run_drift_demo(
        DemoSettings(
            workdir=workdir,
            train_rows=train_rows,
            traffic=traffic,
            epochs=epochs,
            finetune=finetune,
            check_interval_seconds=check_interval,
        ),
        progress=console.print,
    )
    table = Table(title="textclf drift demo")
    table.add_column("step")
    table.add_column("outcome")
    table.add_row("champion before", f"v{result.champion_before}")
    table.add_row("in-domain check", f"{result.in_domain_decision}: {result.in_domain_reason}")
    table.add_row("shifted check", f"{result.shifted_decision}: {result.shifted_reason}")
    table.add_row("retraining runs", str(len(result.retraining_runs)))
    seconds = result.seconds_from_first_shifted_request_to_retraining_start
    table.add_row("first shifted request → run start", f"{seconds:.1f} s" if seconds is not None else "-")
    table.add_row("gate", f"{result.promotion_decision}: {result.promotion_reason}")
    table.add_row("champion after / served", f"v{result.champion_after} / v{result.served_version_after}")
    Console().print(table)
    console.print(f"details: {workdir / 'demo_drift.json'}")


@app.command("demo-data")
def demo_data(
    domain: Annotated[str, typer.Option(help="movie_reviews, tweets, amazon_reviews, nyt_editorials or all")] = "all",
) -> None:
    """Fetch and cache the embedded demo dataset (VADER ground truth, Hutto & Gilbert 2014)."""
    from textclf.demo import CITATION, cache_dir, load_demo

    with console.status("fetching the VADER ground-truth sets from the vaderSentiment sdist"):
        frame = load_demo(domain)
    console.print(f"{len(frame):,} labelled texts cached under {cache_dir() / 'demo'}")
    console.print(frame.groupby(["domain", "label"]).size().to_string())
    console.print(f"source: {CITATION}")


if __name__ == "__main__":
    app()
