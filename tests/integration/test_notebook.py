"""notebooks/tour.ipynb re-executed end to end (nbclient, through `notebooks/execute.py` as `make notebook` runs
it) on a small sample with the tiny BERT: any cell's error fails the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.integration

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TOUR = NOTEBOOKS / "tour.ipynb"


def _outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]


def _text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for output in _outputs(notebook):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.timeout(1800)
def test_the_tour_runs_on_a_small_sample(tmp_path: Path, tiny_model_dir: Path) -> None:
    executed = tmp_path / "tour.ipynb"
    parameters = {
        "SAMPLE_ROWS": "300",
        "HELDOUT_ROWS": "200",
        "BASE_MODEL": str(tiny_model_dir),
        "EPOCHS": "1",
        "WORKDIR": str(tmp_path / "work"),
    }
    command = [sys.executable, str(NOTEBOOKS / "execute.py"), str(TOUR), "--output", str(executed)]
    for name, value in parameters.items():
        command += ["--set", f"{name}={value}"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=1500, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-6000:]

    notebook = nbformat.read(executed, as_version=4)
    assert not [output for output in _outputs(notebook) if output["output_type"] == "error"]
    shown = _text(notebook)
    # Every section produced its result: the steps, the evaluation, the server's answer, both drift decisions.
    for expected in ("✓ ingest", "✓ deploy", "held-out accuracy", "TF-IDF + LR", "model textclf version 1", "no_drift"):
        assert expected in shown, expected
    assert (tmp_path / "work" / "logs" / "tour-run.log").stat().st_size > 0


def test_the_committed_tour_holds_the_outputs_of_a_whole_run() -> None:
    notebook = nbformat.read(TOUR, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert not [cell for cell in code if "injected-parameters" in cell.metadata.get("tags", [])]
    assert all(cell.execution_count for cell in code), "run `make notebook` to execute every cell"
    assert not [output for output in _outputs(notebook) if output["output_type"] == "error"]
    assert "✓ deploy" in _text(notebook)
