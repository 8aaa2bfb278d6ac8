"""The `textclf` command line: the user's door to the pipeline, the server and the monitor; the Makefile calls
it too. This is the composition root: the only place that wires the adapters (KFP, KServe, the monitoring
service) to each other and to the core."""

from __future__ import annotations

import typer

from textclf.cli import monitor, serve, train

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
