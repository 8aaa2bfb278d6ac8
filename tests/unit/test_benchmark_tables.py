"""Benchmark tables in docs/benchmarks.md are generated from the reports in docs/results/: each published table
is what its report renders to, and every table block has its report."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPOSITORY = Path(__file__).resolve().parents[2]


def tables_module():
    spec = importlib.util.spec_from_file_location("benchmark_tables", REPOSITORY / "benchmarks" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_published_table_is_its_reports_rendering() -> None:
    tables = tables_module()
    text = tables.DOCS.read_text()
    blocks = set(re.findall(r"<!-- table:(\w+) -->", text))
    reports = {path.stem for path in tables.PUBLISHED.glob("*.json")}
    assert blocks == reports, "each table block has its report in docs/results, and each report its block"
    for name in sorted(reports):
        expected = tables.markdown(tables.TABLES[name](tables.published(name)))
        assert tables.table_in(text, name) == expected, f"{name}'s table is stale: run `make bench-tables`"


def server(backend: str, rate: float) -> dict:
    wrk = {"requests_per_second": rate, "p50_ms": 50, "p99_ms": 80, "errors": 0, "mean_texts_per_forward_pass": 16}
    rounds = [
        {
            "c32_1_text": {"texts_per_second": 190, "errors": 0},
            "c32_64_texts": {"texts_per_second": 300, "errors": 1},
            "rss_mib": 700,
        }
    ]
    return {
        "backend": backend,
        "wrk_c1": {"p50_ms": 3.0, "p99_ms": 4.0, "errors": 0, "forward_pass_mean_ms": 2.4, "overhead_mean_ms": 0.6},
        "wrk_c32": wrk | {"event_loop_cpu_ms_per_request": 0.46, "process_cpu_ms_per_request": 3.1},
        "bare_model": {"texts_per_second": 835, "server_share": 0.69, "p50_ms_1_text": 2.1},
        "latency_c1_20_words": {"p50_ms": 5.0, "p99_ms": 9.0},
        "rss_mib_after_start": 650,
        "rounds": rounds,
    }


def test_a_report_renders_and_republishing_replaces_only_its_block(tmp_path: Path) -> None:
    tables = tables_module()
    report = {"servers": {"textclf": server("onnx-int8", 574), "baseline": {**server("torch", 53), "bare_model": None}}}
    report["servers"]["baseline"].pop("bare_model")
    table = tables.markdown(tables.serve_rows(report))
    lines = table.splitlines()
    assert lines[0] == "| measure | default (auto chose onnx-int8) | baseline |"
    assert "| wrk: texts/s, c=32, 1 text per request | 574 | 53 |" in lines
    assert "| bare model: texts/s at that batch size | 835 | - |" in lines
    assert "| errors (all runs) | 1 | 1 |" in lines
    prose = "before\n<!-- table:bench_serve -->\n| old |\n<!-- /table:bench_serve -->\nafter\n"
    assert (
        tables.with_table(prose, "bench_serve", table)
        == f"before\n<!-- table:bench_serve -->\n{table}\n<!-- /table:bench_serve -->\nafter\n"
    )
    with pytest.raises(ValueError, match="no <!-- table:bench_drift -->"):
        tables.with_table(prose, "bench_drift", table)
