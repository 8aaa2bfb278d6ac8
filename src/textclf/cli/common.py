"""What every command shares: the console for messages, quiet structured logging, and `--set KEY=VALUE`."""

from __future__ import annotations

import logging
import sys
from typing import Any

import typer
from rich.console import Console

console = Console(stderr=True)


def configure_logging(verbose: bool) -> None:
    """Quiet by default; structured key=value lines when asked for."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="time=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        logging.getLogger("alembic").setLevel(logging.ERROR)


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise typer.BadParameter(f"--set takes KEY=VALUE, got {pair!r}")
        values[key.strip().replace("-", "_")] = value
    return values
