"""Prediction records (the "prediction record" contract, docs/architecture.md) from KServe request-logger CloudEvents.

KServe's logger (and `textclf serve --request-logger-url`) sends each inference request and its response as
two CloudEvents sharing one id, in binary mode (`ce-*` headers, the payload as body) or structured mode
(one `application/cloudevents+json` document). `parse_event` reads either; `prediction_records` joins a
request with its response into one record per text, for every protocol the server speaks.

A predictor shadowing a second model (`textclf serve --shadow-model`) sends a third kind under the same id,
`SHADOW_EVENT`, that carries both models' predictions for the request's texts: `shadow_records` reads it.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from textclf.runtime.wire import (
    MAX_JSON_DEPTH,
    JsonRefused,
    TensorsRefused,
    binary_v2_document,
    json_header_length,
    load_json,
)

REQUEST_EVENT = "org.kubeflow.serving.inference.request"
RESPONSE_EVENT = "org.kubeflow.serving.inference.response"
SHADOW_EVENT = "io.textclf.serving.inference.shadow"
"""textclf's own type (KServe has none for a shadow): {"champion_version", "challenger_version", "champion": [{label,
score}], "challenger": [{label, score}], "champion_ms", "challenger_ms"}, one entry per text of the request."""
EventKind = Literal["request", "response", "shadow"]
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
MAX_ID_CHARS = 200
"""Longest request (event) id stored: the store's key columns hold this many characters."""


class MalformedEvent(ValueError):
    """The event cannot be read; the message says what is wrong with it."""


@dataclass(frozen=True)
class InferenceEvent:
    event_id: str
    kind: EventKind
    time: datetime
    model_name: str
    model_version: str
    payload: Any


@dataclass(frozen=True)
class PredictionRecord:
    request_id: str
    index: int
    time: datetime
    model_name: str
    model_version: str
    text: str
    predicted_label: str
    score: float
    probabilities: list[float] = field(default_factory=list)
    """Class probabilities in the model's label-map order."""


@dataclass(frozen=True)
class ShadowRecord:
    """One text of a shadowed request: what the champion answered and what the challenger would have."""

    request_id: str
    index: int
    time: datetime
    model_name: str
    champion_version: str
    challenger_version: str
    champion_label: str
    champion_score: float
    challenger_label: str
    challenger_score: float
    champion_ms: float
    """The champion's time for the request: queued for its batch and computed."""
    challenger_ms: float
    """The challenger's compute time for the batch that held the request (its queue waits for idle time)."""


EVENT_KINDS: dict[str, EventKind] = {REQUEST_EVENT: "request", RESPONSE_EVENT: "response", SHADOW_EVENT: "shadow"}


def _event_kind(event_type: str) -> EventKind:
    if event_type not in EVENT_KINDS:
        raise MalformedEvent(f"event type {event_type!r} is none of {', '.join(EVENT_KINDS)}")
    return EVENT_KINDS[event_type]


def _event_time(value: Any) -> datetime:
    """The sender's time in UTC; absent, now."""
    if value is None or value == "":
        return datetime.now(UTC)
    if not isinstance(value, str):
        raise MalformedEvent(f"attribute time must be an RFC 3339 timestamp string, not {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # In UTC now: a time near the calendar's ends (0001-01-01T00:00:00+14:00) has no UTC value.
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise MalformedEvent(f"attribute time {value[:60]!r} is not an RFC 3339 timestamp with a UTC value") from None


def _json(data: bytes | str, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    try:
        return load_json(data, what, max_depth)
    except JsonRefused as error:
        raise MalformedEvent(str(error)) from None


def _payload(data: bytes, what: str) -> Any:
    """An event's payload: JSON, or a v2 body in the binary-tensor format (tritonclient's default, logged as sent)
    read into its JSON form."""
    try:
        return load_json(data, what)
    except JsonRefused as not_json:
        if json_header_length(data) is None:
            raise MalformedEvent(str(not_json)) from None
    try:
        return binary_v2_document(data, what=what)
    except (JsonRefused, TensorsRefused) as error:
        raise MalformedEvent(f"{what} is neither JSON nor a v2 binary-tensor body: {error}") from None


def parse_event(headers: Mapping[str, str], body: bytes) -> InferenceEvent:
    """One CloudEvent, binary or structured mode, as an `InferenceEvent`; `MalformedEvent` otherwise."""
    lowered = {key.lower(): value for key, value in headers.items()}
    if lowered.get("content-type", "").startswith(STRUCTURED_CONTENT_TYPE):
        # One level more than a payload may have: the envelope around it.
        document = _json(
            body, f"the structured CloudEvent (an envelope around data of {MAX_JSON_DEPTH} levels)", MAX_JSON_DEPTH + 1
        )
        if not isinstance(document, dict):
            raise MalformedEvent("a structured CloudEvent must be a JSON object")
        attributes = {key.lower(): value for key, value in document.items()}
        if "data_base64" in attributes:
            try:
                data = base64.b64decode(attributes["data_base64"], validate=True)
            except (ValueError, TypeError):
                raise MalformedEvent("data_base64 is not base64") from None
            payload = _payload(data, "data_base64")
        else:
            payload = attributes.get("data")
            if isinstance(payload, str):
                payload = _json(payload, "data")
    else:
        attributes = {key.removeprefix("ce-"): value for key, value in lowered.items() if key.startswith("ce-")}
        payload = _payload(body, "the event body")
    missing = [name for name in ("specversion", "id", "type", "source") if not attributes.get(name)]
    if missing:
        raise MalformedEvent(f"the CloudEvent lacks required attribute(s) {missing}")
    event = InferenceEvent(
        event_id=str(attributes["id"]),
        kind=_event_kind(str(attributes["type"])),
        time=_event_time(attributes.get("time")),
        model_name=str(attributes.get("inferenceservicename", "")),
        model_version=str(attributes.get("modelversion", "")),
        payload=payload,
    )
    for attribute, value in (("id", event.event_id), ("inferenceservicename", event.model_name),
                             ("modelversion", event.model_version)):  # fmt: skip
        if len(value) > MAX_ID_CHARS:
            raise MalformedEvent(f"attribute {attribute} has {len(value)} characters; at most {MAX_ID_CHARS} are kept")
    return event


def _request_texts(payload: Any) -> list[str]:
    if isinstance(payload, dict):
        if isinstance(payload.get("inputs"), list):
            for tensor in payload["inputs"]:
                if isinstance(tensor, dict) and tensor.get("name") == "text":
                    return [str(item) for item in tensor.get("data") or []]
        if isinstance(payload.get("instances"), list):
            return [str(item["text"] if isinstance(item, dict) else item) for item in payload["instances"]]
        if isinstance(payload.get("texts"), list):
            return [str(item) for item in payload["texts"]]
        if "text" in payload:
            return [str(payload["text"])]
    raise MalformedEvent("the request holds no texts (v2 'text' input, v1 'instances', 'texts' or 'text')")


def _response_predictions(payload: Any) -> tuple[list[tuple[str, float, list[float]]], str]:
    """(label, score, probabilities) per text, and the model version the response names."""
    if not isinstance(payload, dict):
        raise MalformedEvent("the response is not a JSON object")
    version = str(payload.get("model_version") or "")
    if isinstance(payload.get("outputs"), list):
        outputs = {tensor.get("name"): tensor for tensor in payload["outputs"] if isinstance(tensor, dict)}
        if not {"label", "score"} <= set(outputs):
            raise MalformedEvent("the v2 response lacks its 'label' and 'score' outputs")
        labels, scores = outputs["label"].get("data") or [], outputs["score"].get("data") or []
        if len(labels) != len(scores):
            raise MalformedEvent(f"the v2 response has {len(labels)} labels but {len(scores)} scores")
        flat = (outputs.get("probabilities") or {}).get("data") or []
        width = len(flat) // len(labels) if labels and flat else 0
        rows = [flat[i * width : (i + 1) * width] for i in range(len(labels))] if width else [[] for _ in labels]
        predictions = [
            (str(label), float(score), [float(p) for p in row])
            for label, score, row in zip(labels, scores, rows, strict=True)
        ]
        return predictions, version
    if isinstance(payload.get("predictions"), list):
        items = payload["predictions"]
    elif "label" in payload:
        items = [payload]
    else:
        raise MalformedEvent("the response holds no predictions")
    predictions = []
    for item in items:
        if not isinstance(item, dict) or "label" not in item:
            raise MalformedEvent("a prediction lacks its label")
        probabilities = item.get("probabilities") or {}
        row = list(probabilities.values()) if isinstance(probabilities, dict) else list(probabilities)
        predictions.append((str(item["label"]), float(item.get("score", 0.0)), [float(p) for p in row]))
    return predictions, version


def _storable(predictions: list[tuple[str, float, list[float]]], version: str) -> None:
    """What the store keeps must be what it can: finite numbers, labels and versions of at most MAX_ID_CHARS."""
    if len(version) > MAX_ID_CHARS:
        raise MalformedEvent(f"the response's model_version has {len(version)} characters; at most {MAX_ID_CHARS}")
    for index, (label, score, probabilities) in enumerate(predictions):
        if len(label) > MAX_ID_CHARS:
            raise MalformedEvent(f"the label of text {index} has {len(label)} characters; at most {MAX_ID_CHARS}")
        if not all(math.isfinite(number) for number in (score, *probabilities)):
            raise MalformedEvent(f"the score or probabilities of text {index} are not all finite numbers")


def prediction_records(request: InferenceEvent, response: InferenceEvent) -> list[PredictionRecord]:
    """One record per text of a request joined with its response."""
    if request.event_id != response.event_id:
        raise MalformedEvent(f"request {request.event_id} and response {response.event_id} are not one exchange")
    texts = _request_texts(request.payload)
    try:
        predictions, response_version = _response_predictions(response.payload)
    except MalformedEvent:
        raise
    except (TypeError, ValueError, OverflowError) as error:
        raise MalformedEvent(f"the response's scores or probabilities are not numbers ({error})") from None
    _storable(predictions, response_version)
    if len(texts) != len(predictions):
        raise MalformedEvent(f"the request has {len(texts)} texts but the response {len(predictions)} predictions")
    # The response body's version first: it names the version that computed the answer, while the event's
    # attribute names the one served when the event was logged, which differs across a hot swap. Both are within
    # MAX_ID_CHARS. KServe's agent sets no version attribute (pkg/logger/worker.go sets inferenceservicename,
    # namespace, component and endpoint).
    version = response_version or response.model_version or request.model_version
    return [
        PredictionRecord(
            request_id=request.event_id,
            index=index,
            time=request.time,
            model_name=response.model_name or request.model_name,
            model_version=version,
            text=text,
            predicted_label=label,
            score=score,
            probabilities=probabilities,
        )
        for index, (text, (label, score, probabilities)) in enumerate(zip(texts, predictions, strict=True))
    ]


def _labelled_scores(payload: dict, side: str) -> list[tuple[str, float]]:
    items = payload.get(side)
    if not isinstance(items, list) or not all(isinstance(item, dict) and "label" in item for item in items):
        raise MalformedEvent(f"the shadow event's {side!r} must be a list of {{'label': ..., 'score': ...}}")
    try:
        pairs = [(str(item["label"]), float(item.get("score", 0.0))) for item in items]
    except (TypeError, ValueError, OverflowError) as error:
        raise MalformedEvent(f"a {side} score is not a number ({error})") from None
    if not all(0.0 <= score <= 1.0 for _, score in pairs):
        raise MalformedEvent(f"a {side} score is not a probability between 0 and 1")
    return pairs


def _milliseconds(payload: dict, name: str) -> float:
    value = payload.get(name, 0.0)
    try:
        milliseconds = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else -1.0
    except OverflowError:
        milliseconds = -1.0
    if not 0 <= milliseconds < float("inf"):
        raise MalformedEvent(f"the shadow event's {name!r} must be a non-negative number of milliseconds")
    return milliseconds


def shadow_records(event: InferenceEvent) -> list[ShadowRecord]:
    """One record per text of a `SHADOW_EVENT`."""
    payload = event.payload
    if not isinstance(payload, dict):
        raise MalformedEvent("the shadow event is not a JSON object")
    champion, challenger = _labelled_scores(payload, "champion"), _labelled_scores(payload, "challenger")
    if len(champion) != len(challenger):
        raise MalformedEvent(
            f"the shadow event has {len(champion)} champion but {len(challenger)} challenger predictions"
        )
    versions = {name: str(payload.get(name) or "") for name in ("champion_version", "challenger_version")}
    for name, value in versions.items():
        if not value or len(value) > MAX_ID_CHARS:
            raise MalformedEvent(f"the shadow event needs {name!r}, at most {MAX_ID_CHARS} characters")
    champion_ms, challenger_ms = _milliseconds(payload, "champion_ms"), _milliseconds(payload, "challenger_ms")
    return [
        ShadowRecord(
            request_id=event.event_id,
            index=index,
            time=event.time,
            model_name=event.model_name,
            champion_version=versions["champion_version"],
            challenger_version=versions["challenger_version"],
            champion_label=champion_label[:MAX_ID_CHARS],
            champion_score=champion_score,
            challenger_label=challenger_label[:MAX_ID_CHARS],
            challenger_score=challenger_score,
            champion_ms=champion_ms,
            challenger_ms=challenger_ms,
        )
        for index, ((champion_label, champion_score), (challenger_label, challenger_score)) in enumerate(
            zip(champion, challenger, strict=True)
        )
    ]
