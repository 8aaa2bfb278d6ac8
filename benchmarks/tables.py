"""Benchmark tables in docs/, generated from the JSON reports the benchmarks write: re-measuring changes data, not
prose.

Every benchmark writes its report to `benchmarks/results/<report>.json` (`record`). One that publishes (`--publish`,
as its `make bench-*` target runs it) also copies it to `docs/results/<report>.json` and rewrites each of the
report's tables wherever docs/*.md marks one with `<!-- table:<table> -->` ... `<!-- /table:<table> -->`.
`python benchmarks/tables.py` rewrites every marked table from the committed reports (`make bench-tables`),
`python benchmarks/tables.py --publish <report>` publishes the last run's report, and
tests/unit/test_benchmark_tables.py fails when a table differs from its report. The row definitions live here, so
the table a benchmark prints and the one in the docs are the same rows."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PUBLISHED = DOCS / "results"
RESULTS = REPO / "benchmarks" / "results"

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
    header = [
        "window",
        "predictions",
        "check, warm",
        "check, cold",
        "storing, per 1,000 predictions",
        "checks drifted",
        "estimated accuracy (true)",
    ]
    rows = [
        [
            name,
            _n(row["window"], 0),
            f"{_n(row['warm_check_seconds'], 1)} s",
            f"{_n(row['cold_check_seconds'], 1)} s",
            f"{_n(row['store_seconds_per_1000_predictions'], 2)} s",
            f"{len(row['drifted_checks'])} of {len(row['scores'])} ({row['decision']})",
            # Reports measured before checks estimated accuracy hold no estimate.
            f"{_n(row['estimated_accuracy'], 3)} ({_n(row['true_accuracy'] or 'no labels', 3)})"
            if "estimated_accuracy" in row
            else "-",
        ]
        for name, row in report.items()
    ]
    return header, rows


def drift_group_rows(report: dict[str, Any]) -> Rows:
    """`make bench-drift`: the groups that explain each drifted window, those it holds most more of first."""
    header = ["window", "group: distinguishing words", "window / reference share", "estimated accuracy", "example"]
    rows = [
        [
            name,
            ", ".join(term["term"] for term in group["terms"][:6]),
            _pair(100 * group["window_share"], 100 * group["reference_share"], 0) + " %",
            _n(group["estimated_accuracy"], 3),
            group["examples"][0][:90].replace("|", "/"),
        ]
        for name, row in report.items()
        for group in row.get("groups", [])
    ]
    return header, rows


SHADOW_SERVERS = {"without_shadow": "champion alone", "with_shadow_100": "with a shadow on 100 %"}


def shadow_rows(report: dict[str, Any]) -> Rows:
    """`make bench-shadow`: the champion's throughput and latency with and without a shadow on every request (the
    means of the rounds), and how many texts the shadow classified and skipped."""
    header = ["server", "concurrency", "requests/s", "p50 ms", "p99 ms", "texts shadowed", "skipped (queue full)"]
    concurrencies = sorted({int(key[1:]) for means in report["mean"].values() for key in means})
    rows = []
    for concurrency in concurrencies:
        for name, means in report["mean"].items():
            run = means[f"c{concurrency}"]
            requests = run["requests_per_second"] * report["seconds"]
            shadowed, skipped = run["shadowed_texts"], run["shadow_skipped_texts"]
            has_shadow = shadowed + skipped > 0
            rows.append(
                [
                    SHADOW_SERVERS.get(name, name),
                    str(concurrency),
                    _n(run["requests_per_second"], 0),
                    _n(run["p50_ms"], 2),
                    _n(run["p99_ms"], 2),
                    f"{_n(shadowed, 0)} ({shadowed / requests:.0%})" if has_shadow else "",
                    _n(skipped, 0) if has_shadow else "",
                ]
            )
    return header, rows


def soak_rows(report: dict[str, Any]) -> Rows:
    """`make bench-soak`: errors, memory growth and whether every logged prediction was stored exactly once."""
    stored = f"{_n(report['predictions_stored'], 0)}, " + (
        "each exactly once" if report["stored_exactly_once"] else "NOT each exactly once"
    )
    rows = [
        ["load", f"{report['concurrency']} clients for {_n(report['seconds'], 0)} s"],
        ["requests answered", f"{_n(report['requests_ok'], 0)} ({_n(report['requests_per_second'], 1)}/s)"],
        ["errors", _n(report["errors"], 0)],
        [
            "resident MiB, after warm-up → at the end",
            f"{_n(report['resident_mib_after_warmup'], 0)} → {_n(report['resident_mib_at_end'], 0)} "
            f"({report['resident_growth_percent']:+.1f} %)",
        ],
        ["predictions in the monitor's store", stored],
        ["request-log events dropped", _n(report["request_log_dropped"], 0)],
    ]
    if "stored_by_end_of_load" in report:  # measured since the soak recorded it; earlier reports lack it
        rows.append(
            [
                "stored by the end of the load; the rest",
                f"{report['stored_by_end_of_load'] / max(report['requests_ok'], 1):.0%}; "
                f"{_n(report['seconds_to_store_the_rest'], 0)} s later",
            ]
        )
    return ["measure", "value"], rows


def imbalance_rows(report: dict[str, Any]) -> Rows:
    """`make bench-imbalance`: each run's test accuracy, macro F1 and the rare class's F1 and recall."""
    counts = report["train_class_counts"]
    rare = min(counts, key=counts.get)
    header = ["run", "accuracy", "macro F1", f"{rare} F1", f"{rare} recall", "training s"]
    rows = [
        [
            name,
            _n(run["metrics"]["accuracy"], 4),
            _n(run["metrics"]["macro_f1"], 4),
            _n(run["metrics"]["per_class"][rare]["f1"], 3),
            _n(run["metrics"]["per_class"][rare]["recall"], 3),
            _n(run["train_seconds"], 0),
        ]
        for name, run in report["results"].items()
    ]
    return header, rows


def estimate_rows(report: dict[str, Any]) -> Rows:
    """`make bench-estimate`: the label-free accuracy estimate against the truth, per model and scenario."""
    header = [
        "trained on",
        "windows of",
        "windows x texts",
        "true accuracy",
        "estimated",
        "mean / largest error",
        "interval held the truth",
        "macro F1 mean error",
        "target (mean error)",
        "ATC: estimated / mean error",
    ]
    rows = []
    for model_name, model in report["models"].items():
        for scenario_name, scenario in model["scenarios"].items():
            target = scenario["target"]
            verdict = "-" if target is None else f"<= {target:.2f}: {'met' if scenario['meets_target'] else 'missed'}"
            rows.append(
                [
                    model_name,
                    scenario_name,
                    f"{len(scenario['windows'])} x {scenario['texts_per_window']}",
                    _n(scenario["true_accuracy"], 3),
                    _n(scenario["estimated_accuracy"], 3),
                    _pair(scenario["mean_absolute_error"], scenario["largest_absolute_error"], 3),
                    f"{scenario['covered']} of {len(scenario['windows'])}",
                    _n(scenario["macro_f1_mean_absolute_error"], 3),
                    verdict,
                    _pair(scenario["thresholded_accuracy"], scenario["thresholded_mean_absolute_error"], 3),
                ]
            )
    return header, rows


def labelling_rows(report: dict[str, Any]) -> Rows:
    """`make bench-labelling`: the retrained model's accuracy on held-out tweets by labels and who picked them."""
    import statistics

    sizes = sorted({run["labels"] for run in report["runs"]})
    header = ["labels picked by", *[f"{size} labels" for size in sizes]]

    def cell(strategy: str, size: int) -> str:
        accuracies = [
            run["accuracy"] for run in report["runs"] if run["strategy"] == strategy and run["labels"] == size
        ]
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        return f"{_n(statistics.mean(accuracies), 4)} ± {_n(spread, 4)} ({len(accuracies)} seeds)"

    rows = [[strategy, *[cell(strategy, size) for size in sizes]] for strategy in ("queue", "random")]
    rows.append(["no labels (the champion)", _n(report["champion_accuracy"], 4), *[""] * (len(sizes) - 1)])
    return header, rows


def workers_rows(report: list[dict[str, Any]]) -> Rows:
    """`make bench-workers`: training speed with one process and with torchrun's workers."""
    header = ["workers", "training samples/s", "validation accuracy", "wall time (torchrun's start, each rank's load)"]
    rows = [
        [
            "1 (one process)" if run["workers"] == 1 else f"{run['workers']} (torchrun, 1 thread each)",
            _n(run["samples_per_second"], 1),
            _n(run["validation_accuracy"], 3),
            f"{_n(run['wall_seconds'], 1)} s",
        ]
        for run in report
    ]
    return header, rows


DATASET_TITLES = {"ag_news": "AG News", "imdb": "IMDB", "sst2": "SST-2 (dev)"}
VARIANT_TITLES = {"defaults": "defaults", "tuned": "tuned", "tfidf_logreg": "TF-IDF + LR", "untrained": "untrained"}


def quality_seconds(result: dict[str, Any]) -> float:
    """Training time; for tuned, the study's too; for the untrained model, its scoring time."""
    return result.get("train_seconds", result.get("seconds", 0.0)) + result.get("tuning_seconds", 0.0)


def quality_peak_mib(result: dict[str, Any]) -> float:
    return max(result.get("peak_rss_mib", 0.0), result.get("tuning_peak_rss_mib", 0.0))


def quality_variant(variant: str, result: dict[str, Any]) -> str:
    """The variant's name; for tuned, which trial won (trial 0 is the configured recipe)."""
    if variant != "tuned" or "best_trial" not in result:
        return VARIANT_TITLES.get(variant, variant)
    return "tuned (kept the recipe)" if result["best_trial"] == 0 else f"tuned (trial {result['best_trial']} won)"


def quality_rows(report: dict[str, Any]) -> Rows:
    """`make bench-quality`: each variant's test accuracy, macro F1, ECE, seconds and peak memory per dataset."""
    header = ["dataset", "training rows", "variant", "accuracy", "macro F1", "ECE", "seconds", "peak RSS MiB"]
    rows = [
        [
            DATASET_TITLES.get(dataset, dataset),
            _n(results["rows"]["train"], 0),
            quality_variant(variant, result),
            _n(result["metrics"]["accuracy"], 4),
            _n(result["metrics"]["macro_f1"], 4),
            _n(result["metrics"]["ece"], 4),
            _n(quality_seconds(result), 0),
            _n(quality_peak_mib(result), 0),
        ]
        for dataset, results in report["results"].items()
        for variant, result in results.items()
        if variant != "rows"
    ]
    return header, rows


BACKENDS = ("torch", "onnx", "onnx-int8")


def quality_backend_rows(report: dict[str, Any]) -> Rows:
    """`make bench-quality`: the defaults' model on each serving backend, on the same test rows."""
    header = ["test split", "torch (bf16 where the CPU has it)", "onnx (fp32)", "onnx-int8", "int8's labels = torch's"]
    rows = [
        [
            f"{DATASET_TITLES.get(dataset, dataset)}, {_n(results['rows']['test'], 0)} rows",
            *(_n(results["defaults"]["backends"][backend]["accuracy"], 4) for backend in BACKENDS),
            f"{results['defaults']['backends']['onnx-int8']['agreement_with_torch']:.1%}",
        ]
        for dataset, results in report["results"].items()
        if "defaults" in results and results["defaults"].get("backends")
    ]
    return header, rows


def fairness_rows(report: dict[str, Any]) -> Rows:
    """`make bench-fairness`: a one-text canary's latency while each probe runs."""
    header = ["probe", "probe's seconds", "canary p50 ms", "canary p99 ms", "canary worst ms", "other"]
    others = {
        "next_request_ms": "next request waited {} ms",
        "left_requests_logged": "the leavers' predictions logged: {}",
    }
    rows = [
        [
            FAIRNESS_PROBES.get(row["probe"], row["probe"]),
            "" if row["probe"] == "alone" else _n(row["probe_seconds"], 1),
            _n(row["canary_p50_ms"], 1),
            _n(row["canary_p99_ms"], 1),
            _n(row["canary_max_ms"], 1),
            "; ".join(text.format(_n(row[key], 0)) for key, text in others.items() if key in row),
        ]
        for row in report["rows"]
    ]
    return header, rows


FAIRNESS_PROBES = {
    "alone": "nothing else (the canary alone)",
    "long-http": "one v1 request, 256 texts x 15,000 characters",
    "long-grpc": "one gRPC ModelInfer, 256 texts x 16,000 characters",
    "gone": "three 64-text requests (2,000 characters each) whose clients leave after 1 s",
    "explain": "a v2 `explain` of 4 texts x 300 words",
}


def profile_rows(report: dict[str, Any]) -> Rows:
    """`make profile-serve`: the event loop's time per request under cProfile, by layer."""
    header = ["layer", "µs per request (profiled)", "share"]
    rows = [
        [layer, _n(values["us_per_request"], 1), f"{values['share']:.0%}"] for layer, values in report["layers"].items()
    ]
    rows.append(["total", _n(report["profiled_event_loop_us_per_request"], 1), "100%"])
    return header, rows


READY_AT = {"serving": "/v2/models/textclf/ready, a MiniLM mounted", "monitor": "/health, an empty volume"}


def images_rows(report: dict[str, Any]) -> Rows:
    """`make bench-images`: each image's size, build time and time from `docker run` to ready."""
    header = ["image (target)", "size", "build", "`docker run` to ready (median)"]
    rows = [
        [
            image["target"],
            f"{image['size_gb']:.2f} GB",
            f"{_n(image['build_seconds'], 0)} s, {image['build']}",
            (
                f"{_n(image['ready_seconds_median'], 1)} s of {len(image['ready_seconds_runs'])} "
                f"({READY_AT.get(image['target'], 'ready')})"
                if image["ready_seconds_median"] is not None
                else "- (KFP starts a step per pod)"
            ),
        ]
        for image in report["images"]
    ]
    return header, rows


@dataclass(frozen=True)
class Table:
    """One published table: the report it is generated from, its rows, and the title the benchmark prints."""

    report: str
    rows: Callable[[Any], Rows]
    title: str


TABLES: dict[str, Table] = {
    "bench_serve": Table("bench_serve", serve_rows, "textclf serve on each backend vs FastAPI + HF pipeline"),
    "bench_explain": Table("bench_explain", explain_rows, "explanations: deletion faithfulness and cost"),
    "bench_drift": Table("bench_drift", drift_rows, "drift check over a window of logged predictions"),
    "bench_drift_groups": Table("bench_drift", drift_group_rows, "what drifted: the groups of each drifted window"),
    "bench_shadow": Table("bench_shadow", shadow_rows, "the champion with and without a shadow on 100 % of requests"),
    "bench_soak": Table("bench_soak", soak_rows, "soak: the request logger on, the monitor receiving"),
    "bench_imbalance": Table("bench_imbalance", imbalance_rows, "a skewed AG News subset, test split as skewed"),
    "bench_estimate": Table("bench_estimate", estimate_rows, "estimated accuracy without labels against the truth"),
    "bench_labelling": Table("bench_labelling", labelling_rows, "retrained on labels the queue or chance picked"),
    "bench_workers": Table("bench_workers", workers_rows, "training with 1 and 2 local workers"),
    "bench_quality": Table("bench_quality", quality_rows, "test accuracy and cost on each shared dataset"),
    "bench_quality_backends": Table("bench_quality", quality_backend_rows, "the defaults' model on each backend"),
    "bench_fairness": Table("bench_fairness", fairness_rows, "a one-text canary while each probe runs"),
    "bench_images": Table("bench_images", images_rows, "textclf's images: size, build and start"),
    "profile_serve": Table("profile_serve", profile_rows, "the event loop's time per request under cProfile, c=32"),
}
"""Each published table by the name its markers use."""


def print_rows(title: str, rows: Rows) -> None:
    """The table on the terminal (rich), aligned as in the docs: the first column left, the measures right."""
    from rich.console import Console
    from rich.table import Table as RichTable

    header, body = rows
    table = RichTable(title=title)
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


def _block(name: str) -> re.Pattern[str]:
    """A marked table: its markers on lines of their own, the table between them (none in a new block)."""
    start, end = _markers(name)
    return re.compile(re.escape(start) + r"\n(?:(.*?)\n)?" + re.escape(end), re.DOTALL)


def table_in(text: str, name: str) -> str | None:
    found = _block(name).search(text)
    return (found[1] or "") if found else None


def with_table(text: str, name: str, table: str) -> str:
    start, end = _markers(name)
    if table_in(text, name) is None:
        raise ValueError(f"no {start} ... {end} block for {name}")
    return _block(name).sub(lambda _: f"{start}\n{table}\n{end}", text, count=1)


def documents() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def marked_tables(text: str) -> list[str]:
    return re.findall(r"<!-- table:(\w+) -->", text)


def published(report: str) -> Any:
    return json.loads((PUBLISHED / f"{report}.json").read_text())


def _rewrite(reports: dict[str, Any]) -> list[str]:
    """Every marked table of `reports` (by report name) rewritten in the docs; the tables' names."""
    rewritten = []
    for document in documents():
        text = original = document.read_text()
        for name in marked_tables(text):
            table = TABLES.get(name)
            if table is None:
                raise ValueError(f"{document.name} marks a table {name!r} that benchmarks/tables.py does not define")
            if table.report in reports:
                text = with_table(text, name, markdown(table.rows(reports[table.report])))
                rewritten.append(name)
        if text != original:
            document.write_text(text)
    return rewritten


def publish(report_name: str, report: Any) -> Path:
    """Keep `report` as the benchmark's published measurement and regenerate its tables in the docs."""
    PUBLISHED.mkdir(parents=True, exist_ok=True)
    path = PUBLISHED / f"{report_name}.json"
    if not _rewrite({report_name: report}):
        raise ValueError(f"no document in {DOCS} marks a table of {report_name}; nothing was published")
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def record(report_name: str, report: Any, publish_run: bool = False, tables_of: str = "") -> None:
    """A benchmark's end: its report written to benchmarks/results/<report_name>.json, each of its tables (those
    of `tables_of`, by default the report's own) printed, and with `publish_run` its report published."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{report_name}.json").write_text(json.dumps(report, indent=2))
    for table in TABLES.values():
        if table.report == (tables_of or report_name):
            print_rows(table.title, table.rows(report))
    print(f"wrote {RESULTS / f'{report_name}.json'}")
    if publish_run:
        print(f"published {publish(report_name, report)} and its tables in {DOCS}")


def parse_arguments(
    parser: argparse.ArgumentParser, report_name: str, may_differ: tuple[str, ...] = ()
) -> argparse.Namespace:
    """The benchmark's arguments, with `--publish` added. A published run measures what a user gets by default, so
    `--publish` is refused with any other option changed (but those in `may_differ`)."""
    parser.add_argument(
        "--publish",
        action="store_true",
        help=f"keep this run as the published measurement (docs/results/{report_name}.json) and regenerate its "
        "tables in docs/ (what its make target does); only with the default options",
    )
    args = parser.parse_args()
    changed = [
        "--" + name.replace("_", "-")
        for name, value in vars(args).items()
        if name != "publish" and name not in may_differ and value != parser.get_default(name)
    ]
    if args.publish and changed:
        parser.error(f"--publish keeps the defaults' measurement: run it without {', '.join(changed)}")
    return args


def regenerate() -> list[str]:
    """Every marked table, rewritten from its committed report."""
    return _rewrite({path.stem: published(path.stem) for path in PUBLISHED.glob("*.json")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--publish", metavar="REPORT", help="publish the last run's benchmarks/results/REPORT.json instead"
    )
    args = parser.parse_args()
    if args.publish:
        print(f"published {publish(args.publish, json.loads((RESULTS / f'{args.publish}.json').read_text()))}")
    else:
        print("regenerated:", ", ".join(sorted(set(regenerate()))) or "nothing published")


if __name__ == "__main__":
    main()
