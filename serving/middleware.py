"""One pure-ASGI middleware in front of KServe's app: the protocol checks KServe lacks (413 for bodies over the
limit, also chunked ones; 400 for malformed binary v2 tensors and bodies that are not UTF-8, which KServe would
answer with a 500), Prometheus metrics, a JSON access log, `x-request-id` on every response, and handing
inference traffic to the request logger."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from textclf.monitor.events import MAX_ID_CHARS, REQUEST_EVENT, RESPONSE_EVENT
from textclf.runtime.auth import Access, check_token
from textclf.runtime.wire import JsonRefused, TensorsRefused, binary_v2_document, load_json
from textclf.serving.model import TextClassifierModel, VersionNotServed, check_version
from textclf.serving.prometheus import ServingMetrics
from textclf.serving.request_logger import LoggedEvent, RequestLogger

access_logger = logging.getLogger("textclf.access")
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("v1_predict", r"^/v1/models/[^/]+:predict$"),
        ("v1_explain", r"^/v1/models/[^/]+:explain$"),
        ("v1_model", r"^/v1/models(/[^/:]+)?$"),
        ("v2_infer", r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$"),
        ("v2_model_ready", r"^/v2/models/[^/]+(/versions/[^/]+)?/ready$"),
        ("v2_model_metadata", r"^/v2/models/[^/]+(/versions/[^/]+)?$"),
        # Everything under it, whatever the characters (a name with a newline in it included): these need the token.
        ("v2_repository", r"^/v2/repository/"),
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
ADMIN_ROUTES = frozenset({"v2_repository"})
CLIENT_CLOSED_REQUEST = 499
"""The status recorded (access log, metrics) for a request whose client left before its answer: nginx's."""
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


async def _disconnect(receive: Receive) -> None:
    """Return when the client has gone (uvicorn answers `http.disconnect` then, or once the response is sent)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def usable_request_id(*presented: str | None) -> str:
    """The first of the client's request ids that is usable as one, else a new one."""
    for candidate in presented:
        if candidate is not None and _USABLE_REQUEST_ID.fullmatch(candidate):
            return candidate
    return str(uuid.uuid4())


def with_request_id(scope: dict, request_id: str) -> dict:
    """The request with `x-request-id` set to the id its logged events carry, for the model to read."""
    kept = [(key, value) for key, value in scope["headers"] if key.lower() != b"x-request-id"]
    return {**scope, "headers": [*kept, (b"x-request-id", request_id.encode())]}


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


def route_of(path: str) -> str:
    """A bounded set of route names for metric labels (paths carry model names and would not be)."""
    for name, pattern in _ROUTES:
        if pattern.match(path):
            return name
    return "other"


@dataclass
class _Exchange:
    """One HTTP request on its way through the middleware: what the access log, the metrics and the request
    logger need of it, recorded as the response goes out."""

    scope: dict
    downstream: Send
    headers: dict[str, str]
    request_id: str
    route: str
    logged: bool
    started: float = field(default_factory=time.perf_counter)
    status: int = 500
    response_type: str = "application/json"
    response_chunks: list[bytes] = field(default_factory=list)

    @classmethod
    def start(cls, scope: dict, send: Send, logged: bool) -> _Exchange:
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        route = route_of(scope["path"])
        return cls(
            scope=scope,
            downstream=send,
            headers=headers,
            # KServe's agent logs a request under its `ce-id` header, or an id of its own it tells no one
            # (pkg/logger/handler.go `getOrCreateID`, kserve master of 2026-08-21): a client that sends `ce-id`
            # gets the same id here, so its events, the shadow's and its feedback all join.
            request_id=usable_request_id(headers.get("ce-id"), headers.get("x-request-id")),
            route=route,
            logged=logged and route in INFERENCE_ROUTES,
        )

    async def send(self, message: dict) -> None:
        """Send on, adding `x-request-id` and keeping the status, content type and (when logged) the body."""
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message["headers"] = [*message.get("headers", []), (b"x-request-id", self.request_id.encode())]
            for key, value in message["headers"]:
                if key.lower() == b"content-type":
                    self.response_type = value.decode("latin-1")
        elif message["type"] == "http.response.body" and self.logged:
            self.response_chunks.append(message.get("body", b""))
        await self.downstream(message)


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
        admin_token: str = "",
    ):
        self.app = app
        self.admin_token = admin_token
        self.metrics = metrics
        self.model = model
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.request_logger = request_logger

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange.start(scope, send, logged=self.request_logger is not None)
        try:
            await self._serve(exchange, receive)
        finally:
            self._finish(exchange)

    async def _serve(self, exchange: _Exchange, receive: Receive) -> None:
        """Refuse what KServe would mishandle; pass the rest on with its body replayed; log inference traffic."""
        scope = exchange.scope
        if exchange.route in ADMIN_ROUTES and (
            refusal := self._admin_refusal(exchange.headers) or self._not_served(scope["path"])
        ):
            await self._reject(exchange.send, *refusal)
            return
        scope, name, asked = unversioned(scope)
        if name == self.model.name:
            try:
                for version in asked:
                    check_version(name, version, self.model.version)
            except VersionNotServed as refused:
                await self._reject(exchange.send, 404, refused.reason)
                return
        if exchange.route == "v2_infer":
            scope = self._v2_body_is_json_unless_binary(scope, exchange.headers)
        body, too_large = await self._read_body(exchange.headers, receive)
        if too_large:
            await self._reject(
                exchange.send,
                413,
                f"request body is larger than {self.max_body_bytes} bytes: send fewer or shorter texts",
            )
            return
        if exchange.route in INFERENCE_ROUTES and (
            problem := self._body_problem(exchange.route, body, exchange.headers)
        ):
            await self._reject(exchange.send, 400, problem)
            return
        if exchange.route not in INFERENCE_ROUTES:
            await self.app(scope, self._replay(body), exchange.send)
            return
        scope = with_request_id(scope, exchange.request_id)
        if not await self._unless_the_client_leaves(self.app(scope, self._replay(body), exchange.send), receive):
            # Nobody reads the answer: the request stops taking turns on the model and is logged as no prediction.
            exchange.status = CLIENT_CLOSED_REQUEST
            return
        if exchange.logged and exchange.status < 400:
            self._log_events(exchange, body)

    @staticmethod
    async def _unless_the_client_leaves(answering: Awaitable[None], receive: Receive) -> bool:
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

    def _finish(self, exchange: _Exchange) -> None:
        seconds = time.perf_counter() - exchange.started
        self.metrics.record_request(exchange.route, exchange.status, seconds)
        if self.access_log:
            scope = exchange.scope
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

    @staticmethod
    def _body_problem(route: str, body: bytes, headers: dict[str, str]) -> str | None:
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
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="textclf"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _log_events(self, exchange: _Exchange, request_body: bytes) -> None:
        version = self.model.version
        request_type = exchange.headers.get("content-type", "application/json")
        for event_type, body, content_type in (
            (REQUEST_EVENT, request_body, request_type),
            (RESPONSE_EVENT, b"".join(exchange.response_chunks), exchange.response_type),
        ):
            self.request_logger.log(
                LoggedEvent(event_type, exchange.request_id, body, content_type, exchange.route, version)
            )
