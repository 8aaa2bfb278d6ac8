"""Which of textclf's files one request crosses on the event loop, and how many calls go from one of them to another:
the predictor's app in process, each protocol's request sent once through httpx's ASGI transport, Python's profiler
hook on the loop's thread (the forward pass, on the inference thread, is not counted).

`python -m tests.support.request_path MODEL_DIR` prints the counts per protocol."""

from __future__ import annotations

import asyncio
import struct
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

TEXTS = ["a warm and funny film", "dull, long and badly acted"]
REPO = Path(__file__).resolve().parents[2]
TEXTCLF_CODE = (str(REPO / "serving"), str(REPO / "src" / "textclf"))


def binary_body(texts: list[str]) -> tuple[bytes, int]:
    """A v2 request in the binary-tensor format, and the length of its JSON header."""
    raw = b"".join(struct.pack("<I", len(text.encode())) + text.encode() for text in texts)
    header = (
        b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [%d], "parameters": {"binary_data_size": %d}}]}'
        % (len(texts), len(raw))
    )
    return header + raw, len(header)


def requests() -> dict[str, dict]:
    """One request of each HTTP protocol, as httpx's `request` arguments."""
    body, header_length = binary_body(TEXTS)
    v2 = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(TEXTS)], "data": TEXTS}]}
    return {
        "simple /predict_batch": {"method": "POST", "url": "/predict_batch", "json": {"texts": TEXTS}},
        "v1": {"method": "POST", "url": "/v1/models/textclf:predict", "json": {"instances": TEXTS}},
        "v2 JSON": {"method": "POST", "url": "/v2/models/textclf/infer", "json": v2},
        "v2 binary": {
            "method": "POST",
            "url": "/v2/models/textclf/infer",
            "content": body,
            "headers": {"inference-header-content-length": str(header_length)},
        },
    }


@dataclass
class Crossed:
    files: set[str] = field(default_factory=set)
    calls_between_files: Counter[tuple[str, str]] = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "files": len(self.files),
            "calls_between_files": sum(self.calls_between_files.values()),
            "file_names": sorted(self.files),
        }


def _textclf_file(filename: str) -> str | None:
    return filename.removeprefix(str(REPO) + "/") if filename.startswith(TEXTCLF_CODE) else None


def crossed(app, request: dict) -> tuple[Crossed, httpx.Response]:
    """What one request crosses on the event loop's thread, and its response."""
    seen = Crossed()

    def profile(frame, event: str, _argument) -> None:
        if event != "call":
            return
        callee = _textclf_file(frame.f_code.co_filename)
        if callee is None:
            return
        seen.files.add(callee)
        caller = _textclf_file(frame.f_back.f_code.co_filename) if frame.f_back is not None else None
        if caller is not None and caller != callee:
            seen.calls_between_files[(caller, callee)] += 1

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.request(**request)  # warm: the first request reads the app's routes
            sys.setprofile(profile)
            try:
                return await client.request(**request)
            finally:
                sys.setprofile(None)

    return seen, asyncio.run(send())


def main() -> None:
    from prometheus_client import CollectorRegistry

    from textclf.config import ServingConfig
    from textclf.serving.prometheus import ServingMetrics
    from textclf.serving.server import build_server

    config = ServingConfig(model=sys.argv[1], grpc_port=0)
    server, model = build_server(config, ServingMetrics.create(CollectorRegistry()))
    try:
        for protocol, request in requests().items():
            counts, response = crossed(server.app, request)
            response.raise_for_status()
            print(protocol, counts.as_dict())
    finally:
        model.stop()


if __name__ == "__main__":
    main()
