"""Benchmark tables in docs/ are generated from the reports in docs/results/: each marked table is what its report
renders to, every marked table has its report, and every report a table."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPOSITORY = Path(__file__).resolve().parents[2]


def tables_module():
    spec = importlib.util.spec_from_file_location("benchmark_tables", REPOSITORY / "benchmarks" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_every_marked_table_is_its_reports_rendering() -> None:
    tables = tables_module()
    reports = {path.stem for path in tables.PUBLISHED.glob("*.json")}
    marked = {}
    for document in tables.documents():
        text = document.read_text()
        for name in tables.marked_tables(text):
            assert name in tables.TABLES, f"{document.name} marks {name}, which benchmarks/tables.py does not define"
            table = tables.TABLES[name]
            assert table.report in reports, f"{document.name}'s {name} has no docs/results/{table.report}.json"
            expected = tables.markdown(table.rows(tables.published(table.report)))
            assert tables.table_in(text, name) == expected, f"{document.name}'s {name} is stale: make bench-tables"
            marked[name] = table.report
    assert reports <= set(marked.values()), "every published report has a table in docs/"


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


def test_publishing_rewrites_the_tables_of_its_report_in_every_document(tmp_path: Path, monkeypatch) -> None:
    tables = tables_module()
    docs = tmp_path / "docs"
    docs.mkdir()
    monkeypatch.setattr(tables, "DOCS", docs)
    monkeypatch.setattr(tables, "PUBLISHED", docs / "results")
    report = {"rows": [{"probe": "alone", "probe_seconds": 10.0, "canary_p50_ms": 8.2, "canary_p99_ms": 13.7,
                        "canary_max_ms": 17.6}]}  # fmt: skip
    block = "<!-- table:bench_fairness -->\n| old |\n<!-- /table:bench_fairness -->"
    (docs / "a.md").write_text(f"# A\n{block}\n")
    (docs / "b.md").write_text("# B, no table\n")
    path = tables.publish("bench_fairness", report)
    assert json.loads(path.read_text()) == report
    assert "| nothing else (the canary alone) |  | 8.2 | 13.7 | 17.6 |  |" in (docs / "a.md").read_text()
    assert (docs / "b.md").read_text() == "# B, no table\n"
    with pytest.raises(ValueError, match=r"no document .* marks a table of bench_soak"):
        tables.publish("bench_soak", {})
    assert not (docs / "results" / "bench_soak.json").exists(), "nothing published without a table to show it"
    (docs / "c.md").write_text("<!-- table:bench_nothing -->\n| x |\n<!-- /table:bench_nothing -->\n")
    with pytest.raises(ValueError, match=r"c\.md marks a table 'bench_nothing'"):
        tables.regenerate()


def test_the_quality_tables_show_every_variant_and_each_backend() -> None:
    tables = tables_module()
    metrics = {"accuracy": 0.9, "macro_f1": 0.89, "ece": 0.02}
    backends = {name: {"accuracy": 0.9, "agreement_with_torch": 0.994} for name in ("torch", "onnx", "onnx-int8")}
    report = {
        "results": {
            "sst2": {
                "rows": {"train": 1800, "validation": 200, "test": 872},
                "defaults": {"metrics": metrics, "train_seconds": 46.2, "peak_rss_mib": 3000, "backends": backends},
                "tuned": {
                    "metrics": metrics,
                    "train_seconds": 40,
                    "tuning_seconds": 60,
                    "tuning_peak_rss_mib": 3500,
                    "best_trial": 0,
                },
                "untrained": {"metrics": metrics, "seconds": 2.4, "peak_rss_mib": 2400},
            }
        }
    }
    _, rows = tables.quality_rows(report)
    assert rows[1] == ["SST-2 (dev)", "1,800", "tuned (kept the recipe)", "0.9000", "0.8900", "0.0200", "100", "3,500"]
    assert rows[2][2:] == ["untrained", "0.9000", "0.8900", "0.0200", "2", "2,400"]
    _, [backend_row] = tables.quality_backend_rows(report)
    assert backend_row == ["SST-2 (dev), 872 rows", "0.9000", "0.9000", "0.9000", "99.4%"]


def test_a_run_is_published_only_with_the_default_options(monkeypatch, capsys) -> None:
    tables = tables_module()

    def parsed(*argv: str, may_differ: tuple[str, ...] = ()):
        parser = argparse.ArgumentParser()
        parser.add_argument("--seconds", type=float, default=20)
        parser.add_argument("--cold", action="store_true")
        monkeypatch.setattr(sys, "argv", ["bench", *argv])
        return tables.parse_arguments(parser, "bench_shadow", may_differ)

    assert parsed("--seconds", "5").seconds == 5, "a run that is not published may change anything"
    assert parsed("--publish").publish
    assert parsed("--publish", "--cold", may_differ=("cold",)).cold
    with pytest.raises(SystemExit):
        parsed("--publish", "--seconds", "20.5", "--cold")
    assert "--publish keeps the defaults' measurement: run it without --seconds, --cold" in capsys.readouterr().err
