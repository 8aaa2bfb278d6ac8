"""`textclf serve`: the KServe predictor on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from textclf.cli.common import console, parse_sets
from textclf.names import CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from textclf.serve.backends import TORCH_BACKEND

if TYPE_CHECKING:
    from rich.text import Text

    from textclf.serve.explain import Explanation


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
    backend: Annotated[
        str | None,
        typer.Option(help="auto (default: the fastest whose accuracy holds), torch, onnx or onnx-int8"),
    ] = None,
    request_logger_url: Annotated[
        str | None, typer.Option(help="send requests and responses as CloudEvents here (the monitor)")
    ] = None,
    shadow_model: Annotated[
        str | None,
        typer.Option(help="also run this model (e.g. models:/textclf@challenger) on requests, off the response path"),
    ] = None,
    shadow_percent: Annotated[
        float | None, typer.Option(help="share of requests the shadow model sees, 0 to 100; default 100")
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
        "backend": backend,
        "request_logger_url": request_logger_url,
        "shadow_model": shadow_model,
        "shadow_percent": shadow_percent,
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


def explain(
    texts: Annotated[list[str], typer.Argument(help="one or more texts to explain")],
    model: Annotated[
        str, typer.Option(help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model, or a model directory")
    ] = f"models:/{REGISTERED_MODEL_NAME}@{CHAMPION_ALIAS}",
    backend: Annotated[str, typer.Option(help="torch, onnx or onnx-int8")] = TORCH_BACKEND,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow URI for models:/ and runs:/")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the explanations as JSON lines")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Which words made the model choose its label: each word coloured by how much deleting it lowers the
    label's probability (green: it supports the label, red: it speaks against it)."""
    import json
    import tempfile

    from mlflow.exceptions import MlflowException

    from textclf.cli.common import configure_logging
    from textclf.registry.model_uri import resolve_model_dir
    from textclf.registry.tracking import default_tracking_uri
    from textclf.serve.backends import BACKENDS
    from textclf.serve.classifier import TextClassifier

    configure_logging(verbose)
    if backend not in BACKENDS:
        raise typer.BadParameter(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    try:
        with tempfile.TemporaryDirectory(prefix="textclf-explain-") as scratch:
            directory = resolve_model_dir(model, tracking_uri or default_tracking_uri(), Path(scratch))
            explanations = TextClassifier.load(directory, backend=backend, export_to=Path(scratch)).explain(texts)
    except (FileNotFoundError, OSError, MlflowException) as error:
        console.print(f"[red]cannot explain:[/red] {error}")
        raise typer.Exit(1) from error
    if as_json:
        for explanation in explanations:
            print(json.dumps(explanation.as_dict()))
        return
    from rich.console import Console

    out = Console()
    for explanation in explanations:
        out.print(f"[bold]{explanation.label}[/bold] (probability {explanation.score:.3f})")
        out.print(coloured_words(explanation))


def coloured_words(explanation: Explanation) -> Text:
    """The words on a background whose strength is the attribution's share of the strongest one."""
    from rich.text import Text

    strongest = max((abs(word.attribution) for word in explanation.words), default=0.0) or 1.0
    line = Text()
    for index, word in enumerate(explanation.words):
        if index:
            line.append(" ")
        strength = abs(word.attribution) / strongest
        shade = int(255 - 175 * strength)
        background = f"rgb({shade},255,{shade})" if word.attribution >= 0 else f"rgb(255,{shade},{shade})"
        line.append(word.word, style=f"black on {background}" if strength > 0.05 else "")
    return line
