"""`textclf serve`: the KServe predictor on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from textclf.cli.common import console, parse_sets


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
        **parse_sets(set_),
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
