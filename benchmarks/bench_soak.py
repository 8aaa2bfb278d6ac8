"""Soak benchmark: `textclf serve` with its request logger on and the monitor receiving, under steady load.

    make bench-soak            # or: python benchmarks/bench_soak.py [--model DIR] [--seconds 300] [--concurrency 64]

Model: the bench-serve model (trained once on an SST-2 sample and cached, see bench_serve.py). Load: SST-2 dev
sentences, one per request, each with its own x-request-id, from `--concurrency` clients for `--seconds`. Both
servers run with tokens set, as on a cluster. Reports errors, throughput, the server's resident memory after
warm-up (the first fifth of the run) and at the end, and whether every prediction reached the monitor's store
exactly once, and how much of it was stored by the end of the load. Prints a table and writes
benchmarks/results/bench_soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx
from bench_serve import DATA, require_data, resident_mib, trained_model
from tables import RESULTS, parse_arguments, record

from textclf.monitor.store import MonitorStore
from textclf.monitor.tables import predictions_table
from textclf.runtime.local_processes import free_port, running_server

TOKEN = "bench-soak-token"
MEMORY_SAMPLE_SECONDS = 5
DRAIN_SECONDS = 300
"""How long the monitor may take, after the load, to store what the request logger still holds."""


async def load(url: str, texts: list[str], concurrency: int, seconds: float, pid: int) -> dict:
    sent: list[str] = []
    errors: list[str] = []
    memory: list[tuple[float, float]] = []
    started = time.monotonic()
    deadline = started + seconds

    async def client_loop(worker: int, client: httpx.AsyncClient) -> None:
        index = worker
        while time.monotonic() < deadline:
            request_id = f"soak-{worker}-{index}"
            try:
                answer = await client.post("/predict", json={"text": texts[index % len(texts)]},
                                           headers={"x-request-id": request_id})  # fmt: skip
                if answer.status_code == 200:
                    sent.append(request_id)
                else:
                    errors.append(f"{answer.status_code}: {answer.text[:200]}")
            except httpx.HTTPError as error:
                errors.append(repr(error))
            index += concurrency

    async def sample_memory() -> None:
        while time.monotonic() < deadline:
            memory.append((time.monotonic() - started, resident_mib(pid)))
            await asyncio.sleep(MEMORY_SAMPLE_SECONDS)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await asyncio.gather(sample_memory(), *(client_loop(worker, client) for worker in range(concurrency)))
    memory.append((time.monotonic() - started, resident_mib(pid)))
    return {"sent": sent, "errors": errors, "memory": memory, "seconds": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model directory (default: the cached bench-serve model)")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parse_arguments(parser, "bench_soak")
    require_data()
    import pandas as pd

    texts = pd.read_csv(DATA / "dev.csv")["text"].astype(str).tolist()
    model = args.model or trained_model()
    workdir = RESULTS / "soak"
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "monitor.db"
    database.unlink(missing_ok=True)
    monitor_port, http_port = free_port(), free_port()
    monitor_url, url = f"http://127.0.0.1:{monitor_port}", f"http://127.0.0.1:{http_port}"
    textclf = [sys.executable, "-m", "textclf.cli"]
    monitor_command = [*textclf, "monitor", "--port", str(monitor_port), "--workdir", str(workdir),
                       "--check-interval", "0", "--set", f"write_token={TOKEN}"]  # fmt: skip
    serve_command = [*textclf, "serve", "--model", str(model), "--port", str(http_port), "--grpc-port", "0",
                     "--request-logger-url", f"{monitor_url}/events", "--set", f"request_logger_token={TOKEN}",
                     "--set", "access_log=false"]  # fmt: skip
    with (
        running_server(monitor_command, f"{monitor_url}/health", workdir / "monitor.log", timeout=120),
        running_server(serve_command, f"{url}/health", workdir / "serve.log", timeout=300) as server,
    ):
        print(f"soak: {args.concurrency} clients for {args.seconds:.0f} s against {url}, logging to {monitor_url}")
        result = asyncio.run(load(url, texts, args.concurrency, args.seconds, server.pid))
        store = MonitorStore(f"sqlite:///{database}")
        stored_during_load = store.count(predictions_table)
        drain_started = time.monotonic()
        while store.count(predictions_table) < len(result["sent"]) and time.monotonic() < drain_started + DRAIN_SECONDS:
            time.sleep(1)
        drain_seconds = time.monotonic() - drain_started
        stored = store.window("textclf", store.latest_model_version("textclf")[1], 10 * len(result["sent"]) + 10)
        dropped = sum(
            float(line.rsplit(" ", 1)[1])
            for line in httpx.get(f"{url}/metrics").text.splitlines()
            if line.startswith("textclf_request_log_dropped_total")
        )
    memory = result["memory"]
    warm = next(mib for at, mib in memory if at >= args.seconds / 5)
    final = memory[-1][1]
    report = {
        "seconds": round(result["seconds"], 1),
        "concurrency": args.concurrency,
        "requests_ok": len(result["sent"]),
        "errors": len(result["errors"]),
        "first_errors": result["errors"][:5],
        "requests_per_second": round(len(result["sent"]) / result["seconds"], 1),
        "resident_mib_after_warmup": round(warm, 1),
        "resident_mib_at_end": round(final, 1),
        "resident_growth_percent": round(100 * (final - warm) / warm, 2),
        "predictions_stored": len(stored),
        "stored_by_end_of_load": stored_during_load,
        "seconds_to_store_the_rest": round(drain_seconds, 1),
        "stored_exactly_once": sorted(stored["request_id"]) == sorted(result["sent"]),
        "request_log_dropped": dropped,
        "memory_samples": [[round(at, 1), round(mib, 1)] for at, mib in memory],
    }
    record("bench_soak", report, args.publish)


if __name__ == "__main__":
    main()
