"""What textclf adds to KServe's FastAPI app: the seeds' simple API, label names in the v2 model metadata,
the Swagger page, and one ASGI middleware for body limits, metrics, access logs and request logging."""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, StrictStr

from textclf.inputs import InvalidTexts, decode_text
from textclf.prediction_log import REQUEST_EVENT, RESPONSE_EVENT
from textclf.serving.metrics import ServingMetrics
from textclf.serving.model import TextClassifierModel, bytes_tensor_items
from textclf.serving.request_logger import LoggedEvent, RequestLogger

access_logger = logging.getLogger("textclf.access")

_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("v1_predict", r"^/v1/models/[^/]+:predict$"),
        ("v1_model", r"^/v1/models(/[^/:]+)?$"),
        ("v2_infer", r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$"),
        ("v2_model_ready", r"^/v2/models/[^/]+(/versions/[^/]+)?/ready$"),
        ("v2_model_metadata", r"^/v2/models/[^/]+(/versions/[^/]+)?$"),
        ("v2_repository", r"^/v2/repository/.*$"),
        ("v2_health", r"^/v2/health/(live|ready)$"),
        ("v2_server_metadata", r"^/v2/?$"),
        ("predict", r"^/predict$"),
        ("predict_batch", r"^/predict_batch$"),
        ("health", r"^/health$"),
        ("metrics", r"^/metrics$"),
        ("docs", r"^/(docs|openapi\.json)$"),
    )
)
INFERENCE_ROUTES = frozenset({"v1_predict", "v2_infer", "predict", "predict_batch"})


def binary_v2_problem(body: bytes, json_length: str) -> str | None:
    """What is wrong with a v2 request in the binary-tensor format, or None. KServe decodes these before the
    model sees them and answers a bad length, bad UTF-8 or a shape mismatch with a 500; we answer 400."""
    if not json_length.isdigit() or int(json_length) > len(body):
        return "inference-header-content-length must be the byte length of the JSON header that starts the body"
    header_end = int(json_length)
    try:
        header = orjson.loads(body[:header_end])
    except orjson.JSONDecodeError as error:
        return f"the JSON header of the binary request is not valid JSON ({error})"
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        return 'the JSON header must be an object with an "inputs" list'
    offset = header_end
    for tensor in header["inputs"]:
        if not isinstance(tensor, dict) or "data" in tensor:
            continue
        name = tensor.get("name")
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if not isinstance(size, int) or size < 0 or offset + size > len(body):
            return f"input {name!r}: parameters.binary_data_size must count the bytes of its data in the body"
        if tensor.get("datatype") != "BYTES":
            return f"input {name!r} must have datatype BYTES, not {tensor.get('datatype')}"
        problem = _bytes_tensor_problem(body[offset : offset + size], tensor.get("shape"), name)
        if problem:
            return problem
        offset += size
    return None


def _bytes_tensor_problem(data: bytes, shape: object, name: object) -> str | None:
    try:
        items = bytes_tensor_items(data, name)
        for index, item in enumerate(items):
            decode_text(item, index)
    except InvalidTexts as error:
        return str(error)
    if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)):
        return f"input {name!r} must have shape [N], not {shape}"
    if math.prod(shape) != len(items):
        return f"input {name!r} declares shape {shape} but carries {len(items)} items"
    return None


def route_of(path: str) -> str:
    """A bounded set of route names for metric labels (paths carry model names and would not be)."""
    for name, pattern in _ROUTES:
        if pattern.match(path):
            return name
    return "other"


class PredictRequest(BaseModel):
    text: StrictStr = Field(description="the text to classify", examples=["A warm, funny and well acted film."])


class PredictBatchRequest(BaseModel):
    texts: list[StrictStr] = Field(description="the texts to classify", examples=[["Loved it.", "Dull and long."]])


class Prediction(BaseModel):
    label: str = Field(description="the predicted class name")
    score: float = Field(description="probability of the predicted class")
    probabilities: dict[str, float] = Field(description="probability of every class, by class name")
    truncated: bool = Field(description="whether the text was cut to the model's maximum length")


class PredictResponse(Prediction):
    model_name: str
    model_version: str


class PredictBatchResponse(BaseModel):
    predictions: list[Prediction]
    model_name: str
    model_version: str


class HealthResponse(BaseModel):
    status: str = Field(description="'ok' when the model answers predictions")
    model_name: str
    model_version: str
    labels: list[str]


class ModelMetadataResponse(BaseModel):
    """KServe v2 model metadata, plus the label names and max length (extra fields v2 clients ignore)."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    parameters: dict[str, Any]


def simple_api_router(model: TextClassifierModel) -> APIRouter:
    """`POST /predict`, `POST /predict_batch`, `GET /health` and the v2 metadata with label names."""
    router = APIRouter()

    def require_ready() -> None:
        if not model.ready or model.loaded is None:
            raise HTTPException(503, "the model is still loading: retry shortly")

    @router.post("/predict", response_model=PredictResponse, tags=["simple API"])
    async def predict(request: PredictRequest) -> PredictResponse:
        """Classify one text."""
        require_ready()
        classified = await model.classify([request.text])
        return PredictResponse(
            **model.as_json(classified.predictions[0]), model_name=model.name, model_version=classified.model_version
        )

    @router.post("/predict_batch", response_model=PredictBatchResponse, tags=["simple API"])
    async def predict_batch(request: PredictBatchRequest) -> PredictBatchResponse:
        """Classify several texts in one request."""
        require_ready()
        classified = await model.classify(list(request.texts))
        return PredictBatchResponse(
            predictions=[Prediction(**model.as_json(result)) for result in classified.predictions],
            model_name=model.name,
            model_version=classified.model_version,
        )

    @router.get("/health", response_model=HealthResponse, tags=["simple API"])
    async def health() -> HealthResponse:
        """200 once the model answers predictions; 503 while it loads."""
        require_ready()
        return HealthResponse(
            status="ok", model_name=model.name, model_version=model.version, labels=list(model.labels)
        )

    @router.get(f"/v2/models/{model.name}", response_model=ModelMetadataResponse, tags=["v2"])
    async def model_metadata() -> ModelMetadataResponse:
        """v2 model metadata; `parameters.labels` lists the class names in `probabilities` column order."""
        require_ready()
        return ModelMetadataResponse(
            name=model.name,
            versions=[model.version],
            platform="pytorch_transformers",
            inputs=model.get_input_types(),
            outputs=model.get_output_types(),
            parameters={
                "labels": list(model.labels),
                "max_length": model.loaded.classifier.metadata.max_length,
                "base_model": model.loaded.classifier.metadata.base_model,
            },
        )

    return router


async def request_validation_handler(_: Request, error: RequestValidationError) -> Response:
    """A 422 that says which field is wrong. FastAPI's default echoes the input, and fails (500) to encode
    an input holding an unpaired surrogate; this one never echoes it and escapes everything."""
    problems = [
        {"location": ".".join(str(part) for part in problem["loc"]), "problem": problem["msg"]}
        for problem in error.errors()
    ]
    summary = "; ".join(f"{item['location']}: {item['problem']}" for item in problems[:5])
    payload = {"error": f"the request does not match the schema: {summary}", "detail": problems}
    return Response(json.dumps(payload, ensure_ascii=True), status_code=422, media_type="application/json")


def install(app: FastAPI, served: TextClassifierModel, middleware: type, **middleware_options: Any) -> None:
    """Add textclf's routes ahead of KServe's (so the metadata route answers first), the middleware, and
    a validation-error handler (KServe registers none for it)."""
    app.include_router(simple_api_router(served))
    app.add_exception_handler(RequestValidationError, request_validation_handler)

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="textclf serving")

    app.add_middleware(middleware, **middleware_options)


Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class ServingMiddleware:
    """Pure ASGI (no per-request task or body copy beyond what the limits need):
    rejects bodies over `max_body_bytes` with 413, records metrics, writes one JSON access-log line,
    gives every response an `x-request-id`, and hands inference traffic to the request logger."""

    def __init__(
        self,
        app: Callable,
        metrics: ServingMetrics,
        model: TextClassifierModel,
        max_body_bytes: int,
        access_log: bool,
        request_logger: RequestLogger | None,
    ):
        self.app = app
        self.metrics = metrics
        self.model = model
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.request_logger = request_logger

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        request_id = headers.get("x-request-id") or str(uuid.uuid4())
        route = route_of(scope["path"])
        if route == "v2_infer":
            scope = self._v2_body_is_json_unless_binary(scope, headers)
        status = 500
        logging_this = self.request_logger is not None and route in INFERENCE_ROUTES
        response_chunks: list[bytes] = []
        response_type = "application/json"

        async def send_with_id(message: dict) -> None:
            nonlocal status, response_type
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                for key, value in message["headers"]:
                    if key.lower() == b"content-type":
                        response_type = value.decode("latin-1")
            elif message["type"] == "http.response.body" and logging_this:
                response_chunks.append(message.get("body", b""))
            await send(message)

        try:
            body, too_large = await self._read_body(headers, receive)
            problem = None if too_large or route not in INFERENCE_ROUTES else self._body_problem(route, body, headers)
            if too_large:
                await self._reject(
                    send_with_id,
                    413,
                    f"request body is larger than {self.max_body_bytes} bytes: send fewer or shorter texts",
                )
            elif problem:
                await self._reject(send_with_id, 400, problem)
            else:
                await self.app(scope, self._replay(body), send_with_id)
                if logging_this and status < 400:
                    self._log_events(request_id, route, body, headers, b"".join(response_chunks), response_type)
        finally:
            seconds = time.perf_counter() - started
            self.metrics.record_request(route, status, seconds)
            if self.access_log:
                access_logger.info(
                    {
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                        "request_id": request_id,
                        "client": scope["client"][0] if scope.get("client") else None,
                    }
                )

    @staticmethod
    def _body_problem(route: str, body: bytes, headers: dict[str, str]) -> str | None:
        if route == "v2_infer" and "inference-header-content-length" in headers:
            return binary_v2_problem(body, headers["inference-header-content-length"])
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            return f"the body is not valid UTF-8 (byte {error.start}): send JSON encoded as UTF-8"
        return None

    @staticmethod
    def _v2_body_is_json_unless_binary(scope: dict, headers: dict[str, str]) -> dict:
        """A v2 body without the binary-tensor header is JSON by the protocol, whatever its content-type
        says (tritonclient sends none); KServe would otherwise take it for binary tensors and refuse it."""
        if "inference-header-content-length" in headers or "json" in headers.get("content-type", ""):
            return scope
        kept = [(key, value) for key, value in scope["headers"] if key.lower() != b"content-type"]
        return {**scope, "headers": [*kept, (b"content-type", b"application/json")]}

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> tuple[bytes, bool]:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return b"", True
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", True
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks), False

    @staticmethod
    def _replay(body: bytes) -> Receive:
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return receive

    @staticmethod
    async def _reject(send: Send, status: int, message: str) -> None:
        payload = json.dumps({"error": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _log_events(
        self,
        request_id: str,
        route: str,
        request_body: bytes,
        headers: dict[str, str],
        response_body: bytes,
        response_type: str,
    ) -> None:
        version = self.model.version
        request_type = headers.get("content-type", "application/json")
        for event_type, body, content_type in (
            (REQUEST_EVENT, request_body, request_type),
            (RESPONSE_EVENT, response_body, response_type),
        ):
            self.request_logger.log(LoggedEvent(event_type, request_id, body, content_type, route, version))
