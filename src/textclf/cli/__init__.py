"""The `textclf` command line: the user's door to the pipeline, the server and the monitor; the Makefile calls
it too. This is the composition root: the only place that wires the adapters (KFP, KServe, the monitoring
service) to each other and to the core."""

from __future__ import annotations

import typer
from rich.markup import escape

from textclf.cli import monitor, serve, train
from textclf.cli.common import console

app = typer.Typer(help="Transformer text classification: train, evaluate, register and promote.", no_args_is_help=True)
app.command()(train.run)
app.command("compile")(train.compile_)
app.command()(train.cv)
app.command()(train.evaluate)
app.command()(train.promote)
app.command()(serve.serve)
app.command()(serve.explain)
app.command()(monitor.monitor)
app.command()(monitor.ui)
app.command()(monitor.drift)
app.command()(monitor.check)
app.command()(monitor.compare)
app.command("demo-drift")(monitor.demo_drift)
app.command("demo-data")(train.demo_data)


# Where each package a command may need comes from (pyproject.toml's extras): the images install one extra each.
EXTRA_OF_PACKAGE = {
    "kserve": "serving",
    "onnxruntime": "serving",
    "evidently": "monitor",
    "fastapi": "monitor",
    "uvicorn": "monitor",
    "sqlalchemy": "monitor",
    "psycopg2": "monitor",
    "torch": "train",
    "peft": "train",
    "accelerate": "train",
    "datasets": "train",
    "optuna": "train",
    "sklearn": "train",
    "onnx": "train",
    "kfp": "train",
    "matplotlib": "train",
    "plotly": "train",
}


def main() -> None:
    """The `textclf` command: a command whose package this installation lacks (an image holds one extra) says
    which extra brings it, instead of a traceback."""
    try:
        app()
    except ModuleNotFoundError as error:
        package = (error.name or "").partition(".")[0]
        if not package or package == "textclf":
            raise
        extra = EXTRA_OF_PACKAGE.get(package, "all")
        console.print(
            f"[red]textclf: this command needs {package}, which this installation lacks[/red] "
            + escape(f"(it comes with pip install 'textclf[{extra}]'; the components image holds everything)")
        )
        raise SystemExit(1) from None
