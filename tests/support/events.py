"""Request-logger CloudEvents as KServe's agent sends them, and the v2 exchanges they carry."""

from __future__ import annotations

import json
from datetime import UTC, datetime


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
