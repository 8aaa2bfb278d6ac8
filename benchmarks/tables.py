"""Benchmark tables in docs/benchmarks.md, generated from the JSON the benchmarks write: re-measuring changes data,
not prose.

A benchmark that publishes (`publish(name, report)`, at the end of its `make bench-*`) copies its report to
`docs/results/<name>.json` and rewrites the table between `<!-- table:<name> -->` and `<!-- /table:<name> -->` in
docs/benchmarks.md from it. `python benchmarks/tables.py` rewrites every table from the committed reports, and
tests/unit/test_benchmark_tables.py fails when a table differs from its report. The row definitions live here,
so the terminal table a benchmark prints and the one in the docs are the same rows."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks.md"
PUBLISHED = REPO / "docs" / "results"

Rows = tuple[list[str], list[list[str]]]
"""A table: its header, then its rows, every cell text."""


def _n(value: Any, digits: int) -> str:
    """A measured number to `digits` decimals (the JSON keeps them all); anything else as it is."""
    return f"{value:,.{digits}f}" if isinstance(value, float | int) and not isinstance(value, bool) else str(value)


def _pair(first: Any, second: Any, digits: int = 1) -> str:
    return f"{_n(first, digits)} / {_n(second, digits)}"


def serve_rows(report: dict[str, Any]) -> Rows:
    """`make bench-serve`: each server variant's throughput, latency, CPU per request and memory."""
    names = [name for name in report["servers"]]
    servers = report["servers"]
    chose = servers["textclf"].get("backend", "?")
    titles = {"textclf": f"default (auto chose {chose})", "textclf, 1 thread": "default, 1 thread"}

    def wrk(server: dict, key: str, field: str, digits: int) -> str:
        return _n(server[key][field], digits) if key in server else "-"

    def bare(server: dict, field: str, digits: int) -> str:
        return _n(server["bare_model"][field], digits) if "bare_model" in server else "-"

    def best(server: dict, load: str) -> Any:
        return max(round_[load]["texts_per_second"] for round_ in server["rounds"])

    measures: list[tuple[str, Callable[[dict], Any]]] = [
        ("wrk: texts/s, c=32, 1 text per request", lambda s: wrk(s, "wrk_c32", "requests_per_second", 0)),
        (
            "wrk: p50 / p99 ms, c=32",
            lambda s: _pair(s["wrk_c32"]["p50_ms"], s["wrk_c32"]["p99_ms"]) if "wrk_c32" in s else "-",
        ),
        (
            "wrk: p50 / p99 ms, c=1, 20 words",
            lambda s: _pair(s["wrk_c1"]["p50_ms"], s["wrk_c1"]["p99_ms"]) if "wrk_c1" in s else "-",
        ),
        (
            "wrk: mean ms, c=1: forward pass / the rest",
            lambda s: (
                _pair(s["wrk_c1"]["forward_pass_mean_ms"], s["wrk_c1"]["overhead_mean_ms"], 2)
                if "overhead_mean_ms" in s.get("wrk_c1", {})
                else "-"
            ),
        ),
        ("event-loop CPU ms per request, c=32", lambda s: wrk(s, "wrk_c32", "event_loop_cpu_ms_per_request", 2)),
        ("process CPU ms per request, c=32", lambda s: wrk(s, "wrk_c32", "process_cpu_ms_per_request", 2)),
        # The baseline serves one text per forward pass: it does not batch.
        (
            "texts per forward pass under wrk, c=32",
            lambda s: _n(s.get("wrk_c32", {}).get("mean_texts_per_forward_pass", 1), 1),
        ),
        ("bare model: texts/s at that batch size", lambda s: bare(s, "texts_per_second", 0)),
        ("server's share of the bare model", lambda s: bare(s, "server_share", 2)),
        ("bare model: p50 ms, one 20-word text", lambda s: bare(s, "p50_ms_1_text", 1)),
        (
            "httpx: texts/s, c=32, 1 / 64 texts per request",
            lambda s: _pair(best(s, "c32_1_text"), best(s, "c32_64_texts"), 0),
        ),
        (
            "httpx: p50 / p99 ms, c=1, 20 words",
            lambda s: _pair(s["latency_c1_20_words"]["p50_ms"], s["latency_c1_20_words"]["p99_ms"]),
        ),
        (
            "httpx: p50 / p99 ms, c=1, v2 REST",
            lambda s: (
                _pair(s["latency_c1_20_words_v2"]["p50_ms"], s["latency_c1_20_words_v2"]["p99_ms"])
                if s.get("latency_c1_20_words_v2")
                else "-"
            ),
        ),
        (
            "errors (all runs)",
            lambda s: (
                (s["wrk_c1"]["errors"] + s["wrk_c32"]["errors"] if "wrk_c32" in s else 0)
                + sum(r["c32_1_text"]["errors"] + r["c32_64_texts"]["errors"] for r in s["rounds"])
            ),
        ),
        (
            "RSS MiB after start; after each round",
            lambda s: f"{_n(s['rss_mib_after_start'], 0)}; " + " / ".join(_n(r["rss_mib"], 0) for r in s["rounds"]),
        ),
    ]
    header = ["measure", *(titles.get(name, name) for name in names)]
    return header, [[label, *(str(value(servers[name])) for name in names)] for label, value in measures]


def explain_rows(report: dict[str, Any]) -> Rows:
    """`make bench-explain`: each method's cost, and how far the explained label's score falls when its k
    top-attributed words are deleted, against k random words."""
    ks = sorted(int(key[1:]) for key in next(iter(report["methods"].values())) if key.startswith("k"))
    header = ["method", "ms per 20-word text", *(f"k={k}: top / random" for k in ks)]
    rows = [
        [
            name,
            _n(result["ms_per_20_word_text"], 1),
            *(_pair(result[f"k{k}"]["top"], result[f"k{k}"]["random"], 3) for k in ks),
        ]
        for name, result in report["methods"].items()
    ]
    return header, rows


def drift_rows(report: dict[str, Any]) -> Rows:
    """`make bench-drift`: one monitor check over a window of logged predictions, per window's domain."""
    header = ["window", "predictions", "check, warm", "check, cold", "storing, per 1,000 predictions", "checks drifted"]
    rows = [
        [
            name,
            _n(row["window"], 0),
            f"{_n(row['warm_check_seconds'], 1)} s",
            f"{_n(row['cold_check_seconds'], 1)} s",
            f"{_n(row['store_seconds_per_1000_predictions'], 2)} s",
            f"{len(row['drifted_checks'])} of {len(row['scores'])} ({row['decision']})",
        ]
        for name, row in report.items()
    ]
    return header, rows


TABLES: dict[str, Callable[[dict[str, Any]], Rows]] = {
    "bench_serve": serve_rows,
    "bench_explain": explain_rows,
    "bench_drift": drift_rows,
}
"""Each published benchmark's table, by its report's name."""


def print_rows(title: str, rows: Rows) -> None:
    """The table on the terminal (rich), aligned as in the docs: the first column left, the measures right."""
    from rich.console import Console
    from rich.table import Table

    header, body = rows
    table = Table(title=title)
    for index, column in enumerate(header):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in body:
        table.add_row(*row)
    Console().print(table)


def markdown(rows: Rows) -> str:
    header, body = rows
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = [header, align, *body]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- table:{name} -->", f"<!-- /table:{name} -->"


def table_in(text: str, name: str) -> str | None:
    start, end = _markers(name)
    found = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.DOTALL)
    return found[1] if found else None


def with_table(text: str, name: str, table: str) -> str:
    start, end = _markers(name)
    if table_in(text, name) is None:
        raise ValueError(f"{DOCS.name} has no {start} ... {end} block for {name}")
    pattern = re.escape(start) + r"\n.*?\n" + re.escape(end)
    return re.sub(pattern, lambda _: f"{start}\n{table}\n{end}", text, count=1, flags=re.DOTALL)


def published(name: str) -> dict[str, Any]:
    return json.loads((PUBLISHED / f"{name}.json").read_text())


def publish(name: str, report: dict[str, Any]) -> Path:
    """Keep `report` as the benchmark's published measurement and regenerate its table in the docs."""
    PUBLISHED.mkdir(parents=True, exist_ok=True)
    path = PUBLISHED / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    DOCS.write_text(with_table(DOCS.read_text(), name, markdown(TABLES[name](report))))
    return path


def regenerate() -> list[str]:
    """Every published table, rewritten from its committed report."""
    text = DOCS.read_text()
    names = sorted(path.stem for path in PUBLISHED.glob("*.json") if path.stem in TABLES)
    for name in names:
        text = with_table(text, name, markdown(TABLES[name](published(name))))
    DOCS.write_text(text)
    return names


if __name__ == "__main__":
    print("regenerated:", ", ".join(regenerate()) or "nothing published")
