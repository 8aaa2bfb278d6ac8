"""`textclf ui`: a page for people, over the public HTTP APIs only (v2 infer with its `explain` parameter, the
monitor's checks, quality, retraining, reports and feedback).

The page talks to this small server alone, which forwards a fixed set of calls to the predictor and the monitor:
one origin, so neither needs CORS, and the monitor's feedback token stays here instead of in the browser. The
same UI then works against a local server, the Compose stack and a cluster: only the two URLs change.

Because this server holds the feedback token, no other site may drive it through a visitor's browser: it answers
only the host names it is configured for (a rebound DNS name is refused), takes calls that change anything only
from its own page (no foreign `Origin` or `Sec-Fetch-Site`, and JSON bodies only, which a cross-site form cannot
send without a preflight), and asks for a user and password (HTTP Basic) when configured, as it must be when it
listens beyond localhost."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from textclf.config import UiConfig
from textclf.monitoring.routes import LABELLER_HEADER, FeedbackItem, problems_of, read_body
from textclf.runtime.auth import basic_user

logger = logging.getLogger(__name__)
STATIC_FILES = {"ui.js": "text/javascript", "ui.css": "text/css"}
MONITOR_READS = ("checks", "quality", "retraining", "reports")
# Headers a report page answers with that the browser should see as they are.
PASSED_HEADERS = ("content-type", "x-request-id")
REPORT_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
UNGUARDED_PATHS = frozenset({"/health"})
"""Answered whatever the Host and credentials: probes (the kubelet sends the pod's IP as Host) and reveal nothing."""
SAFE_METHODS = frozenset({"GET", "HEAD"})
Call = TypeVar("Call", bound=BaseModel)


class ClassifyRequest(BaseModel):
    texts: list[str] = Field(min_length=1)
    explain: bool = True


def _static(name: str) -> str:
    return resources.files("textclf.monitoring").joinpath("ui_static", name).read_text(encoding="utf-8")


CHARTS_FILE = "plotly.min.js"


def charts_library() -> bytes:
    """plotly.js as the installed plotly package ships it: the dashboard's charts, with no CDN and no copy here."""
    return resources.files("plotly").joinpath("package_data", CHARTS_FILE).read_bytes()


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _relayed(response: httpx.Response) -> Response:
    headers = {name: response.headers[name] for name in PASSED_HEADERS if name in response.headers}
    return Response(response.content, status_code=response.status_code, headers=headers)


def host_name(host_header: str) -> str:
    """A Host header's name, without its port (`[::1]:8090` -> `::1`)."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def origin_host(origin: str) -> str | None:
    """The host (and port) an `Origin` header names; None for `null` or one that is no URL."""
    try:
        return httpx.URL(origin).netloc.decode("ascii", "replace") or None
    except httpx.InvalidURL:
        return None


def allowed_host_names(config: UiConfig) -> frozenset[str]:
    configured = {name.strip().lower() for name in config.allowed_hosts.split(",") if name.strip()}
    listening = {config.host.strip("[]").lower()} if config.host not in ("0.0.0.0", "::", "") else set()
    return LOOPBACK_NAMES | configured | listening


def refusal(request: Request, allowed_hosts: frozenset[str], credentials: str) -> tuple[JSONResponse | None, str]:
    """Why the UI will not answer this request (None if it will), and the user it names (empty if none)."""
    host = request.headers.get("host", "")
    if host_name(host).lower() not in allowed_hosts:
        return _problem(
            400,
            f"this UI is not served under the host {host[:100]!r}: add the name to allowed_hosts "
            "(TEXTCLF_UI_ALLOWED_HOSTS) if it is yours",
        ), ""
    user = ""
    if credentials:
        user = basic_user(request.headers.get("authorization"), credentials) or ""
        if not user:
            answer = _problem(401, "sign in with a user and password of this UI (its credentials setting)")
            answer.headers["www-authenticate"] = 'Basic realm="textclf UI", charset="UTF-8"'
            return answer, ""
    if request.method not in SAFE_METHODS:
        origin = request.headers.get("origin")
        if origin is not None and origin_host(origin) != host:
            return _problem(403, f"calls from another site ({origin[:100]}) are refused: use this UI's own page"), ""
        if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return _problem(403, "calls from another site are refused: use this UI's own page"), ""
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return _problem(415, "send the body as JSON, with Content-Type: application/json"), ""
    return None, user


def create_ui_app(config: UiConfig) -> FastAPI:
    """The UI's page and its forwarding routes."""
    serving = config.serving_url.rstrip("/")
    monitor = config.monitor_url.rstrip("/")
    token = config.feedback_token.get_secret_value()
    client = httpx.AsyncClient(timeout=config.timeout_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(title="textclf UI", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    allowed_hosts = allowed_host_names(config)
    credentials = config.credentials.get_secret_value()

    @app.middleware("http")
    async def same_site_only(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path in UNGUARDED_PATHS:
            return await call_next(request)
        refused, user = refusal(request, allowed_hosts, credentials)
        if refused is not None:
            return refused
        request.state.user = user
        return await call_next(request)

    def labeller_headers(request: Request) -> dict[str, str]:
        """The feedback token this server holds, and the signed-in user as the labeller."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if request.state.user:
            headers[LABELLER_HEADER] = request.state.user
        return headers

    async def forward(service: str, url: str, method: str = "GET", **kwargs: Any) -> Response:
        """The service's answer as it gave it, or a 502 naming the service that did not answer."""
        try:
            return _relayed(await client.request(method, url, **kwargs))
        except httpx.HTTPError as error:
            # Its address and the error stay in the UI's log: a page's visitor learns nothing of the network.
            logger.warning("the %s at %s did not answer: %s: %s", service, url, type(error).__name__, error)
            return _problem(502, f"the {service} did not answer; is it up? (the UI's log says where it looked)")

    async def parsed(request: Request, call: type[Call], expected: str, too_large: str) -> Call | Response:
        """The page's call, or a 4xx saying what to send: the body is read only up to `max_body_bytes`."""
        try:
            return call.model_validate_json(await read_body(request, config.max_body_bytes, too_large))
        except HTTPException as error:
            return _problem(error.status_code, error.detail)
        except ValidationError as error:
            return _problem(422, f"send {expected}: {problems_of(error)}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get(f"/static/{CHARTS_FILE}", include_in_schema=False)
    async def charts() -> Response:
        # The same file until plotly is upgraded (and the UI restarted): a browser keeps it for a day.
        return Response(charts_library(), media_type="text/javascript", headers={"cache-control": "max-age=86400"})

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC_FILES:
            return _problem(404, f"no static file {name!r}")
        return Response(_static(name), media_type=STATIC_FILES[name])

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/model")
    async def model() -> Response:
        return await forward("predictor", f"{serving}/v2/models/{config.model_name}")

    @app.post("/api/classify")
    async def classify(request: Request) -> Response:
        asked = await parsed(
            request, ClassifyRequest, "{'texts': ['...'], 'explain': true}", "send fewer or shorter texts"
        )
        if isinstance(asked, Response):
            return asked
        # The id the predictor logs this exchange under, so a correction can name it.
        request_id = uuid.uuid4().hex
        body = {
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(asked.texts)], "data": asked.texts}],
            "parameters": {"explain": asked.explain},
        }
        answer = await forward(
            "predictor",
            f"{serving}/v2/models/{config.model_name}/infer",
            "POST",
            json=body,
            headers={"x-request-id": request_id},
        )
        answer.headers.setdefault("x-request-id", request_id)
        return answer

    async def send_label(request: Request, what_to_do: str, params: dict[str, str]) -> Response:
        """One label from the page, checked and read within the body limit, sent as the monitor's feedback with
        this server's token and the signed-in user as its labeller."""
        item = await parsed(request, FeedbackItem, "{'request_id': ..., 'label': ..., 'index': 0}", what_to_do)
        if isinstance(item, Response):
            return item
        return await forward(
            "monitor",
            f"{monitor}/feedback",
            "POST",
            params=params,
            json=item.model_dump(),
            headers=labeller_headers(request),
        )

    @app.post("/api/feedback")
    async def feedback(request: Request) -> Response:
        return await send_label(request, "send one correction at a time", {})

    @app.post("/api/label")
    async def label(request: Request) -> Response:
        # Only for a prediction the monitor has logged: the queue served it, so anything else is a mistake to show.
        return await send_label(request, "send one label at a time", {"logged_only": "true"})

    @app.get("/api/label/queue")
    async def label_queue(size: str = "20") -> Response:
        return await forward("monitor", f"{monitor}/labelling/queue", params={"size": size})

    @app.get("/api/monitor/dashboard")
    async def monitor_dashboard(hours: str = "24", buckets: str = "48") -> Response:
        return await forward("monitor", f"{monitor}/dashboard", params={"hours": hours, "buckets": buckets})

    @app.get("/api/monitor/{what}")
    async def monitor_read(what: str) -> Response:
        if what not in MONITOR_READS:
            return _problem(404, f"the UI reads only {', '.join(MONITOR_READS)} from the monitor")
        return await forward("monitor", f"{monitor}/{what}")

    @app.get("/api/monitor/reports/{filename}")
    async def monitor_report(filename: str) -> Response:
        if not REPORT_FILE.fullmatch(filename):
            return _problem(404, f"no report {filename!r}: pick one from /api/monitor/reports")
        return await forward("monitor", f"{monitor}/reports/{filename}")

    return app


def serve_ui(config: UiConfig) -> None:
    import uvicorn

    from textclf.monitoring.server import bounded_http

    uvicorn.run(create_ui_app(config), host=config.host, port=config.port, log_level="warning", **bounded_http())
