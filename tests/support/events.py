"""Request-logger CloudEvents as KServe's agent sends them, and the v2 exchanges they carry."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def bytes_tensor(items: list[bytes]) -> bytes:
    """The raw contents of a v2 BYTES tensor: each item as a 4-byte little-endian length, then its bytes."""
    return b"".join(len(item).to_bytes(4, "little") + item for item in items)


def v2_exchange(texts: list[str], labels: list[str], model_version: str = "1") -> tuple[dict, dict]:
    """A v2 inference request and the response textclf's predictor gives it (scores 0.9)."""
    request = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
    response = {
        "model_name": "textclf",
        "model_version": model_version,
        "outputs": [
            {"name": "label", "shape": [len(labels)], "datatype": "BYTES", "data": labels},
            {"name": "score", "shape": [len(labels)], "datatype": "FP32", "data": [0.9] * len(labels)},
        ],
    }
    return request, response


def binary_cloud_event(event_id: str, kind: str, payload: dict, model_version: str = "1") -> tuple[dict, bytes]:
    """Headers and body of a binary-mode request-logger CloudEvent, as KServe's agent sends it."""
    from textclf.monitor.events import REQUEST_EVENT, RESPONSE_EVENT

    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": REQUEST_EVENT if kind == "request" else RESPONSE_EVENT,
        "ce-source": "http://localhost/test",
        "ce-inferenceservicename": "textclf",
        "ce-modelversion": model_version,
        "ce-time": datetime.now(UTC).isoformat(),
        "content-type": "application/json",
    }
    return headers, json.dumps(payload).encode()


def structured_cloud_event(event_id: str, kind: str, payload: dict, model_version: str = "1") -> tuple[dict, bytes]:
    """The same event in structured mode: one application/cloudevents+json document."""
    headers, _ = binary_cloud_event(event_id, kind, payload, model_version)
    document = {key.removeprefix("ce-"): value for key, value in headers.items() if key.startswith("ce-")}
    document["datacontenttype"] = "application/json"
    document["data"] = payload
    return {"content-type": "application/cloudevents+json"}, json.dumps(document).encode()


@contextmanager
def recording_sink(
    status_of: Callable[[str], int] = lambda event_id: 202, seconds_per_event: float = 0.0, port: int = 0
) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A request-log sink on 127.0.0.1 that answers each event `status_of(its ce-id)` after `seconds_per_event`;
    yields its URL and the (ce-id, ce-type) of every event it received, in order of arrival."""
    received: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(seconds_per_event)
            received.append((self.headers["ce-id"], self.headers["ce-type"]))
            self.send_response(status_of(self.headers["ce-id"]))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/events", received
    finally:
        server.shutdown()
        server.server_close()
