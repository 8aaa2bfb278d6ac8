"""`textclf monitor`, `drift`, `check`, `compare` and `demo-drift`: the monitoring service, drift checks, the
shadow comparison, the local loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from textclf.cli.common import configure_logging, console, parse_sets
from textclf.names import LOCAL_MONITOR_URL


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
        **parse_sets(set_),
    }
    try:
        settings = load_monitor_config(config, overrides)
    except (ValidationError, ValueError) as error:
        console.print(f"[red]invalid monitor configuration:[/red] {error}")
        raise typer.Exit(2) from error
    from textclf.monitoring.server import serve as run_monitor
    from textclf.pipelines.runner import launch_on_cluster

    if not verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    console.print(f"monitoring on http://{settings.host}:{settings.port} (events: /events, feedback: /feedback)")
    run_monitor(settings, verbose, launch_on_cluster)


def ui(
    serving_url: Annotated[str | None, typer.Option(help="the predictor; default http://127.0.0.1:8080")] = None,
    monitor_url: Annotated[str | None, typer.Option(help="the monitor; default http://127.0.0.1:8000")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port; default 8090")] = None,
    host: Annotated[str | None, typer.Option(help="interface to listen on; default 127.0.0.1")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of UI configuration fields")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="any UI configuration field, as KEY=VALUE")] = [],  # noqa: B006
) -> None:
    """The browser UI: classify and explain texts, correct labels, watch the monitor's checks."""
    from pydantic import ValidationError

    from textclf.config import load_ui_config

    overrides = {"serving_url": serving_url, "monitor_url": monitor_url, "port": port, "host": host}
    try:
        settings = load_ui_config(config, {**overrides, **parse_sets(set_)})
    except (ValidationError, ValueError) as error:
        console.print(f"[red]invalid UI configuration:[/red] {error}")
        raise typer.Exit(2) from error
    from textclf.monitoring.ui import serve_ui

    console.print(
        f"textclf UI on http://{settings.host}:{settings.port} (predictor {settings.serving_url}, "
        f"monitor {settings.monitor_url})"
    )
    serve_ui(settings)


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
    from textclf.data.sources import DataValidationError
    from textclf.monitor.compare import compare_datasets
    from textclf.monitor.decision import score_text
    from textclf.registry.tracking import default_tracking_uri

    configure_logging(verbose)
    settings = load_monitor_config(config)
    try:
        decision = compare_datasets(
            reference,
            current,
            tracking_uri or default_tracking_uri(),
            model,
            settings.report,
            settings.policy,
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
        table.add_row(name, score_text(score["score"]), f"{score['threshold']:.4g}", "yes" if score["drifted"] else "")
    Console().print(table)


def check(
    monitor_url: Annotated[str, typer.Option(help="the monitoring service")] = "http://127.0.0.1:8000",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the check")] = 600,
) -> None:
    """Ask the monitoring service to run a drift check now (the CronJob's command); print its decision.

    Sends TEXTCLF_MONITOR_WRITE_TOKEN as the bearer token when it is set. A check already running answers 202
    with its ticket: that is a success too (the running check covers this one)."""
    import os

    import httpx

    token = os.environ.get("TEXTCLF_MONITOR_WRITE_TOKEN", "")
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.post(f"{monitor_url.rstrip('/')}/checks", timeout=timeout, headers=headers)
    except httpx.HTTPError as error:
        console.print(f"[red]cannot reach the monitor at {monitor_url}:[/red] {error}")
        raise typer.Exit(1) from error
    if response.status_code not in (200, 202):
        console.print(f"[red]check failed ({response.status_code}):[/red] {response.text}")
        raise typer.Exit(1)
    print(json.dumps(response.json()))


class MonitorUnreachable(RuntimeError):
    """The monitor did not answer, or answered with an error; the message says which."""


def fetch_shadow_comparison(monitor_url: str, challenger_version: str = "", window: int = 0) -> dict:
    """The monitor's `GET /shadow`: the shadowed challenger against the champion on the same live texts."""
    import httpx

    try:
        response = httpx.get(
            f"{monitor_url.rstrip('/')}/shadow",
            params={"challenger_version": challenger_version, "window": window},
            timeout=60,
        )
    except httpx.HTTPError as error:
        raise MonitorUnreachable(f"cannot reach the monitor at {monitor_url}: {error}") from error
    if response.status_code != 200:
        raise MonitorUnreachable(f"the monitor answered {response.status_code}: {response.text[:500]}")
    return response.json()


def _milliseconds(latency: dict | None) -> str:
    return f"{latency['p50']:.1f} / {latency['p95']:.1f}" if latency else "-"


def compare(
    monitor_url: Annotated[str, typer.Option(help="the monitoring service")] = LOCAL_MONITOR_URL,
    challenger_version: Annotated[str, typer.Option(help="the shadowed version; default the latest shadowed")] = "",
    window: Annotated[int, typer.Option(help="latest shadowed texts compared; 0 = the monitor's window_size")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as one JSON object")] = False,
) -> None:
    """The shadowed challenger against the champion on the same live texts (`textclf serve --shadow-model`):
    agreement, disagreement per class, latency of each and, with feedback, accuracy of each."""
    try:
        comparison = fetch_shadow_comparison(monitor_url, challenger_version, window)
    except MonitorUnreachable as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from error
    if as_json:
        print(json.dumps(comparison))
        return
    if not comparison["texts"]:
        console.print("no shadowed texts yet: serve with --shadow-model and --request-logger-url, then send traffic")
        return
    title = (
        f"v{comparison['challenger_version']} shadowing champion v{comparison['champion_version']}: "
        f"{comparison['texts']} texts in {comparison['requests']} requests, {comparison['since']} to "
        f"{comparison['until']}"
    )
    table = Table(title=title)
    for column in (
        "",
        f"champion v{comparison['champion_version']}",
        f"challenger v{comparison['challenger_version']}",
    ):
        table.add_column(column)
    table.add_row("agreement", f"{comparison['agreement']:.4f}", "")
    latency = comparison["latency_ms"]
    table.add_row("ms p50 / p95", _milliseconds(latency["champion"]), _milliseconds(latency["challenger"]))
    accuracy = comparison["accuracy"]
    if accuracy:
        label = f"accuracy ({comparison['labelled']} with feedback)"
        table.add_row(label, f"{accuracy['champion']:.4f}", f"{accuracy['challenger']:.4f}")
    for name, row in comparison["per_class"].items():
        instead = ", ".join(f"{other} {count}" for other, count in row["challenger_said"].items())
        table.add_row(f"champion said {name} ({row['texts']})", f"{row['disagreement']:.4f} disagree", instead)
    Console().print(table)


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
    from textclf.monitoring.drift_demo import DemoSettings, run_drift_demo

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
