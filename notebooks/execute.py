"""Execute a notebook with nbclient (`make notebook` refreshes notebooks/tour.ipynb's committed outputs; the
notebook test runs it on a small sample), overriding its parameters the way papermill does: a cell inserted after
the one tagged `parameters`."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def parse_value(text: str) -> Any:
    """A Python literal where the text is one (1500, 0.5, True, "x"), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def inject_parameters(notebook: nbformat.NotebookNode, parameters: dict[str, Any]) -> None:
    notebook.cells = [cell for cell in notebook.cells if INJECTED_TAG not in cell.metadata.get("tags", [])]
    if not parameters:
        return
    tagged = [index for index, cell in enumerate(notebook.cells) if PARAMETERS_TAG in cell.metadata.get("tags", [])]
    if not tagged:
        raise ValueError(f"the notebook has no cell tagged {PARAMETERS_TAG!r} to override")
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    notebook.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]}))


def execute(path: Path, output: Path, parameters: dict[str, Any], timeout: int) -> None:
    notebook = nbformat.read(path, as_version=4)
    inject_parameters(notebook, parameters)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    nbformat.write(notebook, output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--output", type=Path, help="where to write the executed notebook; default in place")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds one cell may run")
    arguments = parser.parse_args()
    parameters = {}
    for pair in arguments.set:
        name, separator, value = pair.partition("=")
        if not separator:
            parser.error(f"--set takes NAME=VALUE, got {pair!r}")
        parameters[name] = parse_value(value)
    execute(arguments.notebook, arguments.output or arguments.notebook, parameters, arguments.timeout)


if __name__ == "__main__":
    main()
