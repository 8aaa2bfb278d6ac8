"""Where a request's time goes outside the forward pass: `textclf serve` with its event loop (the main thread, where
every request is decoded, validated, routed, logged and answered) under cProfile from the moment the model is
loaded, driven by `wrk` at concurrency 32 (`--connections`) with one 20-word text per request.

    make profile-serve          # or: python benchmarks/profile_serve.py [--model DIR] [--backend onnx-int8]
                                #     [--connections 1]

Prints the event loop's time per request by layer (uvicorn, Starlette, FastAPI, KServe, textclf's middleware and
model hooks, logging, Prometheus, asyncio, system calls) and the garbage collections during the run (a full one
stops every Python thread), and writes benchmarks/results/profile_serve.json and the
raw profile (benchmarks/results/profile_serve.prof, for `python -m pstats` or snakeviz). cProfile slows Python code
two to three times and counts wall time, so read the shares, not the microseconds; `make bench-serve` reports the
unprofiled CPU time of the event loop per request. The forward passes run on another thread and are not profiled.
"""

from __future__ import annotations

import argparse
import collections
import json
import pstats
import shutil
import sys
from pathlib import Path

from bench_serve import TWENTY_WORDS, require_data, trained_model, wrk
from tables import RESULTS, parse_arguments, record

from textclf.runtime.local_processes import free_port, running_server

PROFILE = RESULTS / "profile_serve.prof"
COLLECTIONS = RESULTS / "profile_serve_collections.json"
# The first match of a code file's path names its layer; C functions are named by what they are.
LAYERS = (
    ("/uvicorn/", "uvicorn (HTTP parsing, transport)"),
    ("/httptools/", "uvicorn (HTTP parsing, transport)"),
    ("/starlette/", "Starlette (middleware, routing, responses)"),
    ("/fastapi/", "FastAPI (routing, request and response models)"),
    ("/pydantic", "pydantic"),
    ("/timing_asgi/", "KServe's timing middleware"),
    ("/kserve/", "KServe (model hooks, v2 decoding)"),
    ("/serving/", "textclf serving (middleware, model hooks, routes)"),
    ("/textclf/", "textclf core (validation, batcher)"),
    ("/logging/", "logging (access log)"),
    ("/prometheus_client/", "Prometheus metrics"),
    ("/asyncio/", "asyncio event loop"),
    ("/concurrent/", "thread hand-offs"),
    ("/threading.py", "thread hand-offs"),
    ("/json/", "JSON"),
    ("/uuid.py", "request ids"),
)
IDLE = ("<method 'poll' of 'select.epoll' objects>", "<method 'acquire' of '_thread.lock' objects>")


def layer_of(path: str, function: str) -> str | None:
    """The layer a profiled function belongs to; None for the loop's idle waits."""
    if path == "~":
        if function in IDLE:
            return None
        if "socket" in function or "getrusage" in function or "urandom" in function or "write" in function:
            return "system calls (socket, clock, random, write)"
        return "C built-ins (str, dict, orjson...)"
    for fragment, layer in LAYERS:
        if fragment in path:
            return layer
    return "other Python"


def per_layer(profile: Path) -> dict[str, float]:
    """Seconds of the event loop's own time (not its waits) in each layer."""
    seconds: collections.Counter[str] = collections.Counter()
    for (path, _line, function), (_calls, _primitive, own, _cumulative, _callers) in pstats.Stats(
        str(profile)
    ).stats.items():
        layer = layer_of(path, function)
        if layer is not None:
            seconds[layer] += own
    return dict(seconds)


def profiled_serve(arguments: list[str], profile: Path, collections_file: Path) -> None:
    """Run `textclf serve` with the event loop profiled, and every garbage collection timed, once the model is
    loaded (the child process)."""
    import cProfile
    import gc
    import runpy
    import time

    from textclf.serving.model import TextClassifierModel

    profiler = cProfile.Profile()
    load = TextClassifierModel.load
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started: list[float] = []

    def time_collection(phase: str, info: dict) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses[info["generation"]].append(time.perf_counter() - started[0])

    def load_then_profile(self: TextClassifierModel) -> bool:
        ready = load(self)
        gc.callbacks.append(time_collection)
        profiler.enable()
        return ready

    TextClassifierModel.load = load_then_profile
    sys.argv = ["textclf", "serve", *arguments]
    try:
        runpy.run_module("textclf.cli", run_name="__main__")
    finally:
        profiler.disable()
        profiler.dump_stats(str(profile))
        collections_file.write_text(
            json.dumps(
                {
                    f"generation_{generation}": {
                        "collections": len(seconds),
                        "total_ms": round(1000 * sum(seconds), 1),
                        "longest_ms": round(1000 * max(seconds, default=0.0), 1),
                    }
                    for generation, seconds in pauses.items()
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a textclf model directory (default: bench-serve's SST-2 model)")
    parser.add_argument("--backend", default="auto", help="the serving backend (default: auto, what users get)")
    parser.add_argument("--seconds", type=int, default=20, help="duration of the wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk's concurrent connections")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parse_arguments(parser, "profile_serve")
    if args.child is not None:
        profiled_serve(args.child, PROFILE, COLLECTIONS)
        return
    if not shutil.which("wrk"):
        sys.exit("wrk not found (Debian: apt-get install wrk)")
    if args.model is None:
        require_data()
    model = args.model or trained_model()
    RESULTS.mkdir(parents=True, exist_ok=True)
    PROFILE.unlink(missing_ok=True)
    COLLECTIONS.unlink(missing_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve_arguments = ["--model", str(model), "--backend", args.backend, "--grpc-port", "0", "--port", str(port)]
    command = [sys.executable, __file__, "--child", *serve_arguments]
    log = RESULTS / "profile_serve.log"
    log.unlink(missing_ok=True)
    with running_server(command, f"{url}/health", log, timeout=300):
        load = wrk(url, "/predict", {"text": TWENTY_WORDS}, args.connections, args.seconds)
    layers = per_layer(PROFILE)
    requests = load["requests"]
    total = sum(layers.values())
    report = {
        "model": str(model),
        "backend": args.backend,
        "connections": args.connections,
        "wrk": load,
        "profiled_event_loop_us_per_request": round(1e6 * total / requests, 1),
        "garbage_collections": json.loads(COLLECTIONS.read_text()),
        "layers": {
            layer: {"us_per_request": round(1e6 * seconds / requests, 1), "share": round(seconds / total, 3)}
            for layer, seconds in sorted(layers.items(), key=lambda item: -item[1])
        },
    }
    record("profile_serve", report, args.publish)
    load = report["wrk"]
    full = report["garbage_collections"]["generation_2"]
    print(
        f"wrk c={args.connections}: {load['requests']} requests, {load['requests_per_second']} requests/s, "
        f"p50 {load['p50_ms']} ms, "
        f"p99 {load['p99_ms']} ms (profiled); full garbage collections: {full['collections']}, {full['total_ms']} ms "
        f"in all, the longest {full['longest_ms']} ms; the profile: {PROFILE}"
    )


if __name__ == "__main__":
    main()
