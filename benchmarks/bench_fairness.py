"""Fair sharing of the model, measured with issue 33's probes: a one-text "canary" (20 words, /predict, one
connection) keeps asking while each probe runs against the same `textclf serve`, default settings, default backend.

Probes:
- `long-http`: one v1 request of 256 texts of 15,000 characters (3.8 MB, within every default limit);
- `long-grpc`: one gRPC ModelInfer of 256 texts of 16,000 characters;
- `gone`: three 64-text requests of 2,000-character texts whose clients leave after 1 s (then: how long the next
  request waited, and how many of their texts the request log received as predictions);
- `explain`: the largest explanation within the defaults (4 texts of 300 words, v2 `explain`).

Per probe the table gives the probe's seconds and the canary's median, p99 and worst latency while it ran; the
`alone` row is the canary with nothing else running. Target (issue 33): the canary's p99 under 250 ms.

Model: the bench-serve model (the training pipeline on an SST-2 sample, trained once and cached), or --model.
Writes benchmarks/results/bench_fairness.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from bench_serve import TWENTY_WORDS, require_data, trained_model
from tables import RESULTS, parse_arguments, record

from textclf.runtime.local_processes import free_port, running_server

CANARY_GAP_SECONDS = 0.05


class Canary:
    """One client sending TWENTY_WORDS to /predict, one request at a time, until stopped."""

    def __init__(self, url: str):
        self.url = url
        self.seconds: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=300) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                answer = client.post("/predict", json={"text": TWENTY_WORDS})
                answer.raise_for_status()
                self.seconds.append(time.perf_counter() - started)
                self._stop.wait(CANARY_GAP_SECONDS)

    def __enter__(self) -> Canary:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        ordered = sorted(self.seconds)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return {
            "canary_requests": len(ordered),
            "canary_p50_ms": round(statistics.median(ordered) * 1000, 1),
            "canary_p99_ms": round(p99 * 1000, 1),
            "canary_max_ms": round(ordered[-1] * 1000, 1),
        }


def sink() -> tuple[str, list[str]]:
    """A request-log sink recording the ids of the response events it receives."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers["ce-type"].endswith("response"):
                received.append(self.headers["ce-id"])
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/events", received


def texts(count: int, characters: int) -> list[str]:
    sentence = TWENTY_WORDS + " "
    return [(f"{index} " + sentence * (characters // len(sentence) + 1))[:characters] for index in range(count)]


def long_http(url: str, _: str) -> dict:
    answer = httpx.post(f"{url}/v1/models/textclf:predict", json={"instances": texts(256, 15_000)}, timeout=600)
    answer.raise_for_status()
    return {}


def long_grpc(_: str, target: str) -> dict:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    items = [text.encode() for text in texts(256, 16_000)]
    raw = b"".join(len(item).to_bytes(4, "little") + item for item in items)
    request = pb.ModelInferRequest(
        model_name="textclf",
        inputs=[pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[len(items)])],
        raw_input_contents=[raw],
    )
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 8 * 1024 * 1024)]) as channel:
        GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=600)
    return {}


def make_gone(logged: list[str]) -> Callable[[str, str], dict]:
    def gone(url: str, _: str) -> dict:
        def leave_after_a_second(number: int) -> None:
            with contextlib.suppress(httpx.TimeoutException):
                httpx.post(
                    f"{url}/v1/models/textclf:predict",
                    json={"instances": texts(64, 2_000)},
                    headers={"x-request-id": f"gone-{number}"},
                    timeout=1.0,
                )

        leavers = [threading.Thread(target=leave_after_a_second, args=(number,)) for number in range(3)]
        for thread in leavers:
            thread.start()
        for thread in leavers:
            thread.join()
        started = time.perf_counter()
        httpx.post(f"{url}/predict", json={"text": TWENTY_WORDS}, timeout=600).raise_for_status()
        next_wait = time.perf_counter() - started
        time.sleep(3)  # the request logger's buffer reaches the sink
        left_logged = sum(event_id.startswith("gone-") for event_id in logged)
        return {"next_request_ms": round(next_wait * 1000, 1), "left_requests_logged": left_logged}

    return gone


def explain(url: str, _: str) -> dict:
    words = " ".join(f"word{index}" for index in range(300))
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [4], "data": [words] * 4}],
            "parameters": {"explain": True}}  # fmt: skip
    answer = httpx.post(f"{url}/v2/models/textclf/infer", json=body, timeout=600)
    answer.raise_for_status()
    return {}


def measure(url: str, target: str, name: str, probe: Callable[[str, str], dict] | None) -> dict:
    with Canary(url) as canary:
        time.sleep(1.0)  # the canary's first requests see the probe start
        started = time.perf_counter()
        extra = probe(url, target) if probe else (time.sleep(10) or {})
        seconds = time.perf_counter() - started
    row = {"probe": name, "probe_seconds": round(seconds, 2), **canary.summary(), **extra}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a textclf model directory (default: the bench-serve model)")
    args = parse_arguments(parser, "bench_fairness")
    if args.model is None:
        require_data()
    model = args.model or trained_model()
    events_url, logged = sink()
    port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "textclf.cli", "serve", "--model", str(model), "--port", str(port),
               "--grpc-port", str(grpc_port), "--request-logger-url", events_url]  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    probes = {"alone": None, "long-http": long_http, "long-grpc": long_grpc, "gone": make_gone(logged),
              "explain": explain}  # fmt: skip
    with running_server(command, f"{url}/health", RESULTS / "bench_fairness-serve.log"):
        rows = [measure(url, f"127.0.0.1:{grpc_port}", name, probe) for name, probe in probes.items()]
    record("bench_fairness", {"model": str(model), "rows": rows}, args.publish)


if __name__ == "__main__":
    main()
