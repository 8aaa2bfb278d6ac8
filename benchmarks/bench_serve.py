"""Serving benchmark: `textclf serve` against the seeds' baseline (FastAPI + a Hugging Face pipeline per
request, fp32, no batching), same trained MiniLM model directory, same texts, one server at a time.

    make bench-serve            # or: python benchmarks/bench_serve.py [--model DIR] [--seconds 20]

Model: unless --model is given, the training pipeline fine-tunes the packaged MiniLM on a 4,000-sentence
sample of SST-2 (../shared/data/sst2/train.csv, never committed) once, and the champion is cached under
benchmarks/results/serve-model. Load texts: the SST-2 dev sentences. Reports p50/p99 latency at
concurrency 1 for a 20-word text, throughput at concurrency 32 with 1 and with 64 texts per request,
errors, and the server's resident memory after each of three repeated rounds. Prints a table and writes
benchmarks/results/bench_serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from textclf.runtime.local_processes import free_port, running_server

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "sst2"
RESULTS = REPO / "benchmarks" / "results"
CACHED_MODEL = RESULTS / "serve-model"
TWENTY_WORDS = (
    "The film starts slowly but the cast is wonderful and the last hour is funny, moving and beautifully shot."
)
SAMPLE_ROWS = 4000


def require_data() -> None:
    for name in ("train.csv", "dev.csv"):
        if not (DATA / name).exists():
            sys.exit(f"benchmark data missing: {DATA / name} (see ../shared/data/README.md)")


def trained_model() -> Path:
    """The champion of one pipeline run on an SST-2 sample, trained once and cached."""
    if (CACHED_MODEL / "textclf.json").exists():
        return CACHED_MODEL
    import pandas as pd

    from textclf.registry.model_uri import resolve_model_dir

    workdir = RESULTS / "serve-model-run"
    workdir.mkdir(parents=True, exist_ok=True)
    sample = pd.read_csv(DATA / "train.csv").sample(SAMPLE_ROWS, random_state=0)
    sample = sample[sample["text"].str.split().str.len() >= 5]
    sample.to_csv(workdir / "sst2-sample.csv", index=False)
    print(f"training the benchmark model: textclf pipeline on {len(sample)} SST-2 sentences (once)")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "textclf.cli",
            "run",
            "--data",
            str(workdir / "sst2-sample.csv"),
            "--finetune",
            "full",
            "--trials",
            "0",
            "--epochs",
            "2",
            "--workdir",
            str(workdir),
            "--set",
            f"serving_url=http://127.0.0.1:{free_port()}",
        ],
        check=True,
    )
    resolve_model_dir("models:/textclf@champion", f"sqlite:///{workdir / 'mlflow.db'}", CACHED_MODEL)
    return CACHED_MODEL


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def latency_at_concurrency_one(url: str, path: str, body: dict, requests: int) -> dict:
    timings, errors = [], 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(20):
            client.post(path, json=body)
        for _ in range(requests):
            started = time.perf_counter()
            response = client.post(path, json=body)
            timings.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200
    timings.sort()
    return {
        "p50_ms": round(statistics.median(timings), 2),
        "p99_ms": round(timings[int(len(timings) * 0.99) - 1], 2),
        "requests": requests,
        "errors": errors,
    }


async def _throughput(
    url: str, path: str, bodies: list[dict], texts_per_request: int, concurrency: int, seconds: float
):
    done, errors = 0, 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def worker(offset: int) -> None:
            nonlocal done, errors
            index = offset
            while time.perf_counter() < stop_at:
                response = await client.post(path, json=bodies[index % len(bodies)])
                index += concurrency
                if response.status_code == 200:
                    done += texts_per_request
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"texts_per_second": round(done / elapsed, 1), "texts": done, "seconds": round(elapsed, 1), "errors": errors}


def throughput(url: str, path: str, bodies: list[dict], texts_per_request: int, seconds: float) -> dict:
    return asyncio.run(_throughput(url, path, bodies, texts_per_request, 32, seconds))


def mean_batch_size(url: str) -> float:
    """From the server's own histogram: how full the micro-batches were over the whole run."""
    values = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(("textclf_batch_size_sum ", "textclf_batch_size_count ")):
            name, value = line.split()
            values[name] = float(value)
    return round(values["textclf_batch_size_sum"] / values["textclf_batch_size_count"], 1)


def measure(name: str, command: list[str], url: str, texts: list[str], seconds: float, rounds: int) -> dict:
    log = RESULTS / f"bench_serve_{name.replace(', ', '_').replace(' ', '-')}.log"
    # running_server appends; this log holds one benchmark run, as it did before.
    log.unlink(missing_ok=True)
    with running_server(command, f"{url}/health", log, timeout=300) as process:
        single = [{"text": text} for text in texts]
        batches = [{"texts": texts[i : i + 64]} for i in range(0, len(texts) - 63, 64)]
        result = {"latency_c1_20_words": latency_at_concurrency_one(url, "/predict", {"text": TWENTY_WORDS}, 300)}
        if name.startswith("textclf"):
            v2_body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [TWENTY_WORDS]}]}
            result["latency_c1_20_words_v2"] = latency_at_concurrency_one(url, "/v2/models/textclf/infer", v2_body, 300)
        result["rss_mib_after_start"] = round(resident_mib(process.pid), 1)
        result["rounds"] = []
        for round_index in range(rounds):
            one = throughput(url, "/predict", single, 1, seconds)
            many = throughput(url, "/predict_batch", batches, 64, seconds)
            result["rounds"].append(
                {"c32_1_text": one, "c32_64_texts": many, "rss_mib": round(resident_mib(process.pid), 1)}
            )
            print(f"  {name} round {round_index + 1}: {one['texts_per_second']} / {many['texts_per_second']} texts/s")
        if name.startswith("textclf"):
            result["mean_texts_per_forward_pass"] = mean_batch_size(url)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a textclf model directory (default: train one on SST-2)")
    parser.add_argument("--seconds", type=float, default=20, help="duration of each throughput measurement")
    parser.add_argument("--rounds", type=int, default=3, help="repeated throughput rounds (memory must stay flat)")
    args = parser.parse_args()
    require_data()
    RESULTS.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    model = args.model or trained_model()
    texts = pd.read_csv(DATA / "dev.csv")["text"].tolist()
    servers = {}
    textclf_serve = [sys.executable, "-m", "textclf.cli", "serve", "--model", str(model), "--grpc-port", "0"]
    variants = {
        "textclf": textclf_serve,
        # One intra-op thread leaves the other core to HTTP handling (and, here, to the load generator).
        "textclf, 1 torch thread": [*textclf_serve, "--set", "torch_threads=1"],
        "baseline": [sys.executable, str(REPO / "benchmarks" / "baseline_server.py"), str(model)],
    }
    for name, command in variants.items():
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [*command, "--port", str(port)] if name.startswith("textclf") else [*command, str(port)]
        print(f"measuring {name}")
        servers[name] = measure(name, command, url, texts, args.seconds, args.rounds)

    report = {"model": str(model), "texts": "SST-2 dev sentences", "twenty_word_text": TWENTY_WORDS, **servers}
    best = {name: max(r["c32_1_text"]["texts_per_second"] for r in s["rounds"]) for name, s in servers.items()}
    report["speedup_c32_1_text"] = round(best["textclf"] / best["baseline"], 2)
    report["speedup_c32_1_text_1_torch_thread"] = round(best["textclf, 1 torch thread"] / best["baseline"], 2)
    report["speedup_c32_64_texts"] = round(
        max(r["c32_64_texts"]["texts_per_second"] for r in servers["textclf"]["rounds"])
        / max(r["c32_64_texts"]["texts_per_second"] for r in servers["baseline"]["rounds"]),
        2,
    )
    (RESULTS / "bench_serve.json").write_text(json.dumps(report, indent=2))
    print_table(servers, report)


def print_table(servers: dict, report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="textclf serve vs FastAPI + HF pipeline (same MiniLM model, same texts)")
    table.add_column("measure")
    for name in servers:
        table.add_column(name, justify="right")
    rows = [
        ("p50 ms, c=1, 20 words (/predict)", lambda s: s["latency_c1_20_words"]["p50_ms"]),
        ("p99 ms, c=1, 20 words (/predict)", lambda s: s["latency_c1_20_words"]["p99_ms"]),
        ("texts/s, c=32, 1 text/request", lambda s: max(r["c32_1_text"]["texts_per_second"] for r in s["rounds"])),
        ("texts/s, c=32, 64 texts/request", lambda s: max(r["c32_64_texts"]["texts_per_second"] for r in s["rounds"])),
        ("errors", lambda s: sum(r["c32_1_text"]["errors"] + r["c32_64_texts"]["errors"] for r in s["rounds"])),
        ("RSS MiB after start", lambda s: s["rss_mib_after_start"]),
        ("RSS MiB after each round", lambda s: " / ".join(str(r["rss_mib"]) for r in s["rounds"])),
    ]
    for label, value in rows:
        table.add_row(label, *(str(value(s)) for s in servers.values()))
    v2_latency = [servers[name].get("latency_c1_20_words_v2") for name in servers]
    table.add_row("p50 / p99 ms, c=1, v2 REST", *(f"{v['p50_ms']} / {v['p99_ms']}" if v else "-" for v in v2_latency))
    table.add_row(
        "mean texts per forward pass", *(str(s.get("mean_texts_per_forward_pass", 1)) for s in servers.values())
    )
    Console().print(table)
    print(
        f"throughput x{report['speedup_c32_1_text']} (1 text/request; "
        f"x{report['speedup_c32_1_text_1_torch_thread']} with 1 torch thread), "
        f"x{report['speedup_c32_64_texts']} (64 texts/request)"
    )
    print(f"wrote {RESULTS / 'bench_serve.json'}")


if __name__ == "__main__":
    main()
