"""Serving benchmark: `textclf serve` on each inference backend (the default `auto`, then torch, onnx and
onnx-int8 forced, and auto with one thread) against the seeds' baseline (FastAPI + a Hugging Face pipeline per
request, fp32, no batching), same trained MiniLM model directory, same texts, one server at a time.

    make bench-serve            # or: python benchmarks/bench_serve.py [--model DIR] [--seconds 20]

Model: unless --model is given, the training pipeline fine-tunes the packaged MiniLM on a 4,000-sentence
sample of SST-2 (../shared/data/sst2/train.csv, never committed) once, and the champion is cached under
benchmarks/results/serve-model. Load texts: the SST-2 dev sentences.

Two load generators: `wrk` (Debian's package; C, so it takes little of the CPU the server needs) posts one
20-word text per request at concurrency 1 and 32; the Python httpx client posts SST-2 sentences, one or 64
per request, at concurrency 32 in three repeated rounds (resident memory must stay flat). The bare model
(`TextClassifier.predict`, no server, same backend and threads) is timed on batches of the size the server
formed under wrk's load: the server's throughput as a share of it is what the HTTP layer costs. The CPU time of
the server's event loop (its main thread) per request under that load is the work a request costs outside the
forward pass. Prints a table and writes benchmarks/results/bench_serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tables import RESULTS, parse_arguments, record

from textclf.runtime.local_processes import free_port, running_server

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "sst2"
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
    from textclf.registry.model_dir import ModelDirectory

    if CACHED_MODEL.is_dir() and (cached := ModelDirectory.located_in(CACHED_MODEL)).is_model_directory():
        return cached.path
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
            f"serving.url=http://127.0.0.1:{free_port()}",
        ],
        check=True,
    )
    return resolve_model_dir("models:/textclf@champion", f"sqlite:///{workdir / 'mlflow.db'}", CACHED_MODEL)


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time (user + system) of a process, or of one of its threads, from /proc."""
    stat = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def histogram_totals(url: str, histogram: str) -> tuple[float, float]:
    """From one of the server's own histograms: the sum and count of its observations so far."""
    values = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith((f"{histogram}_sum ", f"{histogram}_count ")):
            name, value = line.split()
            values[name] = float(value)
    return values.get(f"{histogram}_sum", 0.0), values.get(f"{histogram}_count", 0.0)


def batch_size_totals(url: str) -> tuple[float, float]:
    """Texts and forward passes so far."""
    return histogram_totals(url, "textclf_batch_size")


def served_backend(url: str) -> str:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("textclf_model_info{"):
            return line.split('backend="', 1)[1].split('"', 1)[0]
    return "torch"


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[BODY]]
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "non_2xx": %d, "socket_errors": %d, "p50_ms": %.3f, "p99_ms": %.3f, '
    .. '"mean_ms": %.3f}\\n',
    summary.requests, summary.duration / 1e6, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.mean / 1000))
end
"""


def wrk(url: str, path: str, body: dict, connections: int, seconds: float) -> dict:
    """`wrk` posting the same body: requests/s, p50 and p99 latency (ms), errors."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.replace("BODY", json.dumps(body)))
    threads = min(2, connections)
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            script.name,
            url + path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(script.name).unlink()
    result = json.loads(output.strip().splitlines()[-1])
    result["requests_per_second"] = round(result["requests"] / result["seconds"], 1)
    result["errors"] = result.pop("non_2xx") + result.pop("socket_errors")
    return result


def bare_model(model: Path, backend: str, threads: int, batch_size: int, seconds: float) -> dict:
    """The model alone on this machine: texts/s of `TextClassifier.predict` on batches of `batch_size` copies of
    the 20-word text, and the latency of one text alone."""
    from textclf.serve.classifier import TextClassifier

    classifier = TextClassifier.load(model, threads, backend)
    batch = [TWENTY_WORDS] * batch_size
    for _ in range(5):
        classifier.predict(batch)
        classifier.predict([TWENTY_WORDS])
    lone = []
    for _ in range(200):
        started = time.perf_counter()
        classifier.predict([TWENTY_WORDS])
        lone.append((time.perf_counter() - started) * 1000)
    texts, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        classifier.predict(batch)
        texts += batch_size
    return {
        "backend": backend,
        "batch_size": batch_size,
        "texts_per_second": round(texts / (time.perf_counter() - started), 1),
        "p50_ms_1_text": round(statistics.median(lone), 2),
    }


def measure(name: str, command: list[str], url: str, texts: list[str], seconds: float, rounds: int) -> dict:
    log = RESULTS / f"bench_serve_{name.replace(', ', '_').replace(' ', '-')}.log"
    # running_server appends; this log holds one benchmark run, as it did before.
    log.unlink(missing_ok=True)
    textclf = name != "baseline"
    with running_server(command, f"{url}/health", log, timeout=300) as process:
        single = [{"text": text} for text in texts]
        batches = [{"texts": texts[i : i + 64]} for i in range(0, len(texts) - 63, 64)]
        result = {"latency_c1_20_words": latency_at_concurrency_one(url, "/predict", {"text": TWENTY_WORDS}, 300)}
        if textclf:
            result["backend"] = served_backend(url)
            v2_body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [TWENTY_WORDS]}]}
            result["latency_c1_20_words_v2"] = latency_at_concurrency_one(url, "/v2/models/textclf/infer", v2_body, 300)
        if shutil.which("wrk"):
            compute_before = histogram_totals(url, "textclf_batch_compute_seconds")
            result["wrk_c1"] = wrk(url, "/predict", {"text": TWENTY_WORDS}, 1, seconds / 2)
            if textclf:
                # A lone request's time in the server beyond its forward pass: the HTTP layer's cost, read apart from
                # the forward pass's own speed (which varies from run to run on a shared machine).
                compute_after = histogram_totals(url, "textclf_batch_compute_seconds")
                compute_ms = (
                    1000 * (compute_after[0] - compute_before[0]) / max(compute_after[1] - compute_before[1], 1)
                )
                result["wrk_c1"]["forward_pass_mean_ms"] = round(compute_ms, 3)
                result["wrk_c1"]["overhead_mean_ms"] = round(result["wrk_c1"]["mean_ms"] - compute_ms, 3)
            before = batch_size_totals(url) if textclf else (0.0, 0.0)
            # The event loop runs on the server's main thread (thread id = process id); the forward passes run on
            # other threads. Its CPU time per request is the work a request costs outside the model.
            loop_before, process_before = cpu_seconds(process.pid, process.pid), cpu_seconds(process.pid)
            result["wrk_c32"] = wrk(url, "/predict", {"text": TWENTY_WORDS}, 32, seconds)
            requests = max(result["wrk_c32"]["requests"], 1)
            result["wrk_c32"]["event_loop_cpu_ms_per_request"] = round(
                1000 * (cpu_seconds(process.pid, process.pid) - loop_before) / requests, 3
            )
            result["wrk_c32"]["process_cpu_ms_per_request"] = round(
                1000 * (cpu_seconds(process.pid) - process_before) / requests, 3
            )
            if textclf:
                after = batch_size_totals(url)
                result["wrk_c32"]["mean_texts_per_forward_pass"] = round(
                    (after[0] - before[0]) / max(after[1] - before[1], 1), 1
                )
        result["rss_mib_after_start"] = round(resident_mib(process.pid), 1)
        result["rounds"] = []
        for round_index in range(rounds):
            one = throughput(url, "/predict", single, 1, seconds)
            many = throughput(url, "/predict_batch", batches, 64, seconds)
            result["rounds"].append(
                {"c32_1_text": one, "c32_64_texts": many, "rss_mib": round(resident_mib(process.pid), 1)}
            )
            print(f"  {name} round {round_index + 1}: {one['texts_per_second']} / {many['texts_per_second']} texts/s")
        if textclf:
            total_texts, passes = batch_size_totals(url)
            result["mean_texts_per_forward_pass"] = round(total_texts / max(passes, 1), 1)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a textclf model directory (default: train one on SST-2)")
    parser.add_argument("--seconds", type=float, default=20, help="duration of each throughput measurement")
    parser.add_argument("--rounds", type=int, default=3, help="repeated throughput rounds (memory must stay flat)")
    args = parse_arguments(parser, "bench_serve")
    require_data()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not shutil.which("wrk"):
        print("wrk not found (Debian: apt-get install wrk): measuring with the Python client only")
    import pandas as pd

    model = args.model or trained_model()
    texts = pd.read_csv(DATA / "dev.csv")["text"].tolist()
    servers = {}
    textclf_serve = [sys.executable, "-m", "textclf.cli", "serve", "--model", str(model), "--grpc-port", "0"]
    variants = {
        "textclf": textclf_serve,
        "torch": [*textclf_serve, "--backend", "torch"],
        "onnx": [*textclf_serve, "--backend", "onnx"],
        "onnx-int8": [*textclf_serve, "--backend", "onnx-int8"],
        # One intra-op thread leaves the other core to HTTP handling (and, here, to the load generator).
        "textclf, 1 thread": [*textclf_serve, "--set", "torch_threads=1"],
        "baseline": [sys.executable, str(REPO / "benchmarks" / "baseline_server.py"), str(model)],
    }
    for name, command in variants.items():
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [*command, "--port", str(port)] if name != "baseline" else [*command, str(port)]
        print(f"measuring {name}")
        servers[name] = measure(name, command, url, texts, args.seconds, args.rounds)
        if name != "baseline" and "wrk_c32" in servers[name]:
            formed = max(1, round(servers[name]["wrk_c32"]["mean_texts_per_forward_pass"]))
            threads = 1 if "1 thread" in name else 0
            bare = bare_model(model, servers[name]["backend"], threads, formed, args.seconds / 2)
            bare["server_share"] = round(servers[name]["wrk_c32"]["requests_per_second"] / bare["texts_per_second"], 2)
            servers[name]["bare_model"] = bare

    report = {"model": str(model), "texts": "SST-2 dev sentences", "twenty_word_text": TWENTY_WORDS, "servers": servers}
    best = {name: max(r["c32_1_text"]["texts_per_second"] for r in s["rounds"]) for name, s in servers.items()}
    report["speedup_c32_1_text"] = round(best["textclf"] / best["baseline"], 2)
    report["speedup_c32_1_text_1_thread"] = round(best["textclf, 1 thread"] / best["baseline"], 2)
    report["speedup_c32_64_texts"] = round(
        max(r["c32_64_texts"]["texts_per_second"] for r in servers["textclf"]["rounds"])
        / max(r["c32_64_texts"]["texts_per_second"] for r in servers["baseline"]["rounds"]),
        2,
    )
    if all("wrk_c32" in server for server in servers.values()):
        wrk_rate = {name: server["wrk_c32"]["requests_per_second"] for name, server in servers.items()}
        report["wrk_speedup_c32_vs_baseline"] = round(wrk_rate["textclf"] / wrk_rate["baseline"], 2)
        report["wrk_speedup_c32_vs_torch"] = round(wrk_rate["textclf"] / wrk_rate["torch"], 2)
    record("bench_serve", report, args.publish)
    print(
        f"httpx throughput x{report['speedup_c32_1_text']} the baseline (1 text/request; "
        f"x{report['speedup_c32_1_text_1_thread']} with 1 thread), x{report['speedup_c32_64_texts']} (64 texts/request)"
    )
    if "wrk_speedup_c32_vs_baseline" in report:
        print(
            f"wrk, c=32: the default x{report['wrk_speedup_c32_vs_baseline']} the baseline, "
            f"x{report['wrk_speedup_c32_vs_torch']} the torch backend"
        )
    print(f"wrote {RESULTS / 'bench_serve.json'}")


if __name__ == "__main__":
    main()
