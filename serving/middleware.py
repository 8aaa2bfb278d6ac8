"""The predictor's HTTP middleware, in three pure-ASGI pieces, outermost first:

- `Observed`: names the route from the app's own routing table, gives every response an `x-request-id`, and
  records each request's metrics and JSON access-log line.
- `Checked`: what KServe's routes lack: the admin token on the model-repository routes, 413 for a body over the
  limit (chunked ones too), 400 for a body the monitor could not read back (malformed binary v2 tensors, bodies
  that are not UTF-8 JSON, which KServe would answer with a 500), versions in the path or the query, and
  cancelling a request whose client left.
- `Teed`: hands each answered inference exchange to the request logger.

`Observed` leaves one `Exchange` in the request's scope, which the other two read and complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import FastAPI
from starlette.routing import compile_path

from textclf.monitor.events import MAX_ID_CHARS
from textclf.runtime.auth import Access, check_token
from textclf.runtime.wire import JsonRefused, TensorsRefused, binary_v2_document, load_json
from textclf.serving.model import TextClassifierModel
from textclf.serving.prometheus import ServingMetrics
from textclf.serving.protocol import VersionNotServed, check_version
from textclf.serving.request_logger import RequestLogger

access_logger = logging.getLogger("textclf.access")
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
App = Callable[[dict, Receive, Send], Awaitable[None]]

ROUTE_NAMES = {
    "/v1/models/{model_name}:predict": "v1_predict",
    "/v1/models/{model_name}:explain": "v1_explain",
    "/v1/models": "v1_model",
    "/v1/models/{model_name}": "v1_model",
    "/v2/models/{model_name}/infer": "v2_infer",
    "/v2/models/{model_name}/versions/{model_version}/infer": "v2_infer",
    "/v2/models/{model_name}/ready": "v2_model_ready",
    "/v2/models/{model_name}/versions/{model_version}/ready": "v2_model_ready",
    "/v2/models/{model_name}": "v2_model_metadata",
    "/v2/models/{model_name}/versions/{model_version}": "v2_model_metadata",
    "/v2/repository/models/{model_name}/load": "v2_repository",
    "/v2/repository/models/{model_name}/unload": "v2_repository",
    "/v2/health/live": "v2_health",
    "/v2/health/ready": "v2_health",
    "/v2": "v2_server_metadata",
    "/predict": "predict",
    "/predict_batch": "predict_batch",
    "/health": "health",
    "/metrics": "metrics",
    "/docs": "docs",
    "/openapi.json": "docs",
}
"""Metric and log names of the app's routes, by the path each route was declared with (KServe's are in
kserve 0.21.0's `protocol/rest/v1_endpoints.py` and `v2_endpoints.py`): a bounded set of labels, where paths carry
model names and would not be. A path no route matches is "other"."""
INFERENCE_ROUTES = frozenset({"v1_predict", "v2_infer", "predict", "predict_batch"})
REPOSITORY_PREFIX = "/v2/repository/"
"""Every path under it needs the admin token, whether or not a route matches it."""
CLIENT_CLOSED_REQUEST = 499
"""The status recorded (access log, metrics) for a request whose client left before its answer: nginx's."""
EXCHANGE = "textclf.exchange"
"""Where `Observed` leaves the request's `Exchange` in its scope."""
# v2's model routes with a version, in the path (/versions/V) or the query (?model_version=V). KServe 0.21.0
# answers both with 501 "Model versioning not supported yet" (kserve/protocol/rest/v2_endpoints.py), while the
# model metadata lists a version: here the version being served is answered as the unversioned route, and any
# other gets a 404.
_MODEL_ROUTE = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?$")
_VERSION_QUERY = "model_version"
_REPOSITORY_MODEL = re.compile(r"^/v2/repository/models/([^/]+)/(?:load|unload)$")
# A client's x-request-id is kept when it is printable ASCII and short enough to be stored; any other is
# replaced by a fresh id (the response says which), so no header value can break the request logger's sends.
_USABLE_REQUEST_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID_CHARS}}}")


def usable_request_id(*presented: str | None) -> str:
    """The first of the client's request ids that is usable as one, else a new one."""
    for candidate in presented:
        if candidate is not None and _USABLE_REQUEST_ID.fullmatch(candidate):
            return candidate
    return str(uuid.uuid4())


class RouteNames:
    """The name of the route the app's router takes for a request: the first of the app's routes, in the order its
    OpenAPI document lists them (the order they were added), whose path matches and that takes the method (else
    the first whose path matches: the router answers 405), named by `ROUTE_NAMES`; a v2 model path with a version
    is named as the unversioned route `Checked` sends it to. Read from the app when the first request comes (every
    route is added by then), and remembered per method and path."""

    def __init__(self, app: FastAPI, cached: int = 4096):
        self.app = app
        self._routes: list[tuple[re.Pattern[str], frozenset[str], str]] | None = None
        self.of = functools.lru_cache(maxsize=cached)(self._of)

    def routes(self) -> list[tuple[re.Pattern[str], frozenset[str], str]]:
        if self._routes is None:
            paths = self.app.openapi()["paths"]
            undocumented = {self.app.openapi_url: {"get": {}}, "/docs": {"get": {}}}
            self._routes = [
                (compile_path(path)[0], frozenset(method.upper() for method in methods), path)
                for path, methods in {**paths, **undocumented}.items()
                if path
            ]
        return self._routes

    def _of(self, method: str, path: str) -> str:
        if path.startswith(REPOSITORY_PREFIX):
            return "v2_repository"
        if versioned := _MODEL_ROUTE.match(path):  # `Checked` sends it to the unversioned route
            name, _version, rest = versioned.groups()
            path = f"/v2/models/{name}{rest or ''}"
        matching = [(methods, template) for pattern, methods, template in self.routes() if pattern.match(path)]
        taking = [template for methods, template in matching if method in methods or method == "HEAD"]
        chosen = taking or [template for _methods, template in matching]
        return ROUTE_NAMES.get(chosen[0], "other") if chosen else "other"


@dataclass
class Exchange:
    """One HTTP request on its way through the middleware: what the access log, the metrics and the request
    logger need of it."""

    route: str
    request_id: str
    headers: dict[str, str]
    started: float = field(default_factory=time.perf_counter)
    status: int = 500
    response_type: str = "application/json"


class Observed:
    """Names the route, sets `x-request-id` on the request (for the model) and on its response, and records
    metrics and the access log once the response is out."""

    def __init__(self, app: App, route_names: RouteNames, metrics: ServingMetrics, access_log: bool):
        self.app, self.route_names, self.metrics, self.access_log = app, route_names, metrics, access_log

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        # KServe's agent logs a request under its `ce-id` header, or an id of its own it tells no one
        # (pkg/logger/handler.go `getOrCreateID`, read at kserve master of 2026-08-21: the agent's Go source is not
        # in the pinned Python wheel): a client that sends `ce-id` gets the same id here, so its events, the
        # shadow's and its feedback all join.
        request_id = usable_request_id(headers.get("ce-id"), headers.get("x-request-id"))
        exchange = Exchange(self.route_names.of(scope["method"], scope["path"]), request_id, headers)
        kept = [(key, value) for key, value in scope["headers"] if key.lower() != b"x-request-id"]
        scope = {**scope, "headers": [*kept, (b"x-request-id", request_id.encode())], EXCHANGE: exchange}

        async def observed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                for key, value in message["headers"]:
                    if key.lower() == b"content-type":
                        exchange.response_type = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self._record(scope, exchange)

    def _record(self, scope: dict, exchange: Exchange) -> None:
        seconds = time.perf_counter() - exchange.started
        self.metrics.record_request(exchange.route, exchange.status, seconds)
        if self.access_log:
            access_logger.info(
                {
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": exchange.route,
                    "status": exchange.status,
                    "duration_ms": round(seconds * 1000, 3),
                    "request_id": exchange.request_id,
                    "client": scope["client"][0] if scope.get("client") else None,
                }
            )


class Checked:
    """Refuses what KServe would mishandle or should not serve, and passes the rest on with its body replayed."""

    def __init__(self, app: App, model: TextClassifierModel, max_body_bytes: int, admin_token: str = ""):
        self.app, self.model, self.max_body_bytes, self.admin_token = app, model, max_body_bytes, admin_token

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        exchange: Exchange | None = scope.get(EXCHANGE)
        if exchange is None:
            await self.app(scope, receive, send)
            return
        refusal = None
        if exchange.route == "v2_repository":
            refusal = self._admin_refusal(exchange.headers) or self._not_served(scope["path"])
        scope, name, asked = unversioned(scope)
        if refusal is None and name == self.model.name:
            try:
                for version in asked:
                    check_version(name, version, self.model.version)
            except VersionNotServed as refused:
                refusal = 404, refused.reason
        if refusal is not None:
            await reject(send, *refusal)
            return
        if exchange.route == "v2_infer":
            scope = v2_body_is_json_unless_binary(scope, exchange.headers)
        body, too_large = await self._read_body(exchange.headers, receive)
        if too_large:
            await reject(
                send, 413, f"request body is larger than {self.max_body_bytes} bytes: send fewer or shorter texts"
            )
            return
        if exchange.route not in INFERENCE_ROUTES:
            await self.app(scope, replay(body), send)
            return
        if problem := body_problem(exchange.route, body, exchange.headers):
            await reject(send, 400, problem)
            return
        if not await unless_the_client_leaves(self.app(scope, replay(body), send), receive):
            # Nobody reads the answer: the request stops taking turns on the model and is logged as no prediction.
            exchange.status = CLIENT_CLOSED_REQUEST

    def _admin_refusal(self, headers: dict[str, str]) -> tuple[int, str] | None:
        """Loading and unloading models change what every client gets: they need the admin token."""
        access = check_token(headers.get("authorization"), self.admin_token)
        if access is Access.OPEN:
            return 403, (
                "the model-repository routes are off: start the server with TEXTCLF_SERVE_ADMIN_TOKEN set, "
                "then send Authorization: Bearer <that token>"
            )
        if access is Access.DENIED:
            return 401, "send Authorization: Bearer <the server's admin token> to load or unload models"
        return None

    def _not_served(self, path: str) -> tuple[int, str] | None:
        """Loading or unloading a model this server does not serve: 404 (KServe 0.21.0 answers a load of an
        unknown name with 503, kserve/protocol/model_repository_extension.py `load`)."""
        named = _REPOSITORY_MODEL.match(path)
        if named is None or named[1] == self.model.name:
            return None
        return 404, f"model {named[1]!r} is not served here: this server serves {self.model.name!r}"

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


class Teed:
    """Hands each inference exchange answered below 400 to the request logger: its request and response bodies,
    under the request's id, with the version that answered."""

    def __init__(self, app: App, model: TextClassifierModel, request_logger: RequestLogger):
        self.app, self.model, self.request_logger = app, model, request_logger

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        exchange: Exchange | None = scope.get(EXCHANGE)
        if exchange is None or exchange.route not in INFERENCE_ROUTES:
            await self.app(scope, receive, send)
            return
        request_chunks: list[bytes] = []
        response_chunks: list[bytes] = []

        async def teed_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                request_chunks.append(message.get("body", b""))
            return message

        async def teed_send(message: dict) -> None:
            if message["type"] == "http.response.body":
                response_chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, teed_receive, teed_send)
        if exchange.status >= 400:
            return
        self.request_logger.log_exchange(
            exchange.request_id,
            b"".join(request_chunks),
            b"".join(response_chunks),
            exchange.route,
            self.model.version,
            request_type=exchange.headers.get("content-type", "application/json"),
            response_type=exchange.response_type,
        )


def serving_middleware(
    app: App,
    routed_by: FastAPI,
    model: TextClassifierModel,
    metrics: ServingMetrics,
    max_body_bytes: int,
    access_log: bool,
    request_logger: RequestLogger | None,
    admin_token: str = "",
) -> App:
    """`app` behind the three pieces (the tee only with a request logger); `routed_by` is the app whose routes
    name the requests."""
    inner = Teed(app, model, request_logger) if request_logger is not None else app
    return Observed(Checked(inner, model, max_body_bytes, admin_token), RouteNames(routed_by), metrics, access_log)


def unversioned(scope: dict) -> tuple[dict, str, list[str]]:
    """A v2 model request without its version: as if sent to the unversioned route, which KServe answers for
    the version being served; with the model's name and the versions asked (path, then query)."""
    found = _MODEL_ROUTE.match(scope["path"])
    if found is None:
        return scope, "", []
    name, path_version, rest = found.groups()
    query = urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    asked = [version for version in (path_version, *(v for k, v in query if k == _VERSION_QUERY)) if version]
    kept = [(key, value) for key, value in query if key != _VERSION_QUERY]
    if path_version is None and len(kept) == len(query):
        return scope, name, []
    path = f"/v2/models/{name}{rest or ''}"
    query_string = urllib.parse.urlencode(kept).encode("latin-1")
    return {**scope, "path": path, "raw_path": path.encode(), "query_string": query_string}, name, asked


def binary_v2_problem(body: bytes, json_length: str) -> str | None:
    """What is wrong with a v2 request in the binary-tensor format, or None. KServe decodes these before the
    model sees them and answers a bad length, bad UTF-8 or a shape mismatch with a 500; we answer 400. The
    monitor reads the logged body with the same decoder."""
    if not json_length.isdigit() or int(json_length) > len(body):
        return "inference-header-content-length must be the byte length of the JSON header that starts the body"
    try:
        binary_v2_document(body, int(json_length), "the binary request")
    except (JsonRefused, TensorsRefused) as error:
        return str(error)
    return None


def body_problem(route: str, body: bytes, headers: dict[str, str]) -> str | None:
    if route == "v2_infer" and "inference-header-content-length" in headers:
        return binary_v2_problem(body, headers["inference-header-content-length"])
    # Read as the monitor reads the logged exchange (textclf.runtime.wire): what is answered can be stored.
    # One pass over a good body; only a refused one is read again, to name a bad byte.
    try:
        load_json(body, "the body")
    except JsonRefused as error:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            return f"the body is not valid UTF-8 (byte {bad.start}): send JSON encoded as UTF-8"
        return str(error)
    return None


def v2_body_is_json_unless_binary(scope: dict, headers: dict[str, str]) -> dict:
    """A v2 body without the binary-tensor header is JSON by the protocol, whatever its content-type says
    (tritonclient sends none); KServe would otherwise take it for binary tensors and refuse it."""
    if "inference-header-content-length" in headers or "json" in headers.get("content-type", ""):
        return scope
    kept = [(key, value) for key, value in scope["headers"] if key.lower() != b"content-type"]
    return {**scope, "headers": [*kept, (b"content-type", b"application/json")]}


async def _disconnect(receive: Receive) -> None:
    """Return when the client has gone (uvicorn answers `http.disconnect` then, or once the response is sent)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_the_client_leaves(answering: Awaitable[None], receive: Receive) -> bool:
    """Run `answering`; cancel it if the client disconnects first (its batcher futures with it). Whether it
    finished. Once the body is read, the server's next message for this request is `http.disconnect`."""
    answer = asyncio.ensure_future(answering)
    left = asyncio.ensure_future(_disconnect(receive))
    await asyncio.wait({answer, left}, return_when=asyncio.FIRST_COMPLETED)
    if answer.done():
        left.cancel()
        answer.result()
        return True
    answer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await answer
    return False


def replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def reject(send: Send, status: int, message: str) -> None:
    payload = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="textclf"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
