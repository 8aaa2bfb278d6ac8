"""The monitoring service's app: the routes (`textclf.monitoring.routes`) over one store, checker and set of
metrics, the scheduled checks, and errors as JSON that says what to do."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from textclf.config import MonitorConfig
from textclf.monitor.check import DriftChecker
from textclf.monitor.store import MonitorStore
from textclf.monitoring.checks import CheckRunner, CheckSchedule
from textclf.monitoring.prometheus import MonitorMetrics
from textclf.monitoring.routes import arrived_on, problems_of, router
from textclf.serving.unexpected_errors import UnexpectedErrors

log = logging.getLogger(__name__)


def create_app(config: MonitorConfig, store: MonitorStore, checker: DriftChecker) -> FastAPI:
    metrics = MonitorMetrics()
    checks = CheckRunner(checker, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        schedule = None
        if config.check_interval_seconds > 0:
            schedule = CheckSchedule(checks, config.check_interval_seconds)
            schedule.start()
        if not config.write_token.get_secret_value():
            log.warning("no write_token is set: anyone who reaches this port can post events, feedback and checks")
        try:
            yield
        finally:
            if schedule is not None:
                await asyncio.to_thread(schedule.stop)
            await asyncio.to_thread(checks.close)

    app = FastAPI(
        title="textclf monitor",
        description="Prediction log sink, feedback, drift reports and guarded retraining for textclf.",
        lifespan=lifespan,
    )
    app.state.config, app.state.store, app.state.checker, app.state.metrics = config, store, checker, metrics
    app.state.checks = checks
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(SQLAlchemyError, store_unavailable)
    app.add_exception_handler(HTTPException, http_error)
    app.include_router(router)
    app.add_middleware(UnexpectedErrors, service="monitor")
    if config.events_port:
        app.add_middleware(EventsPortOnly, events_port=config.events_port)
    return app


class EventsPortOnly:
    """On `events_port` only `POST /events` is served: 404 for anything else there. That route needs no token
    on that port (`routes.require_writer`): the network admits only the request loggers to it."""

    def __init__(self, app: ASGIApp, events_port: int):
        self.app, self.events_port = app, events_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        on_events_port = scope["type"] == "http" and arrived_on(scope, self.events_port)
        if on_events_port and (scope["path"], scope["method"]) != ("/events", "POST"):
            response = JSONResponse(
                {"error": f"port {self.events_port} takes only POST /events; the other routes are on the main port"},
                status_code=404,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse({"error": problems_of(error)}, status_code=422)


async def store_unavailable(_: Request, error: SQLAlchemyError) -> JSONResponse:
    # Not acknowledged, so the sender may retry: nothing was stored.
    log.error("store error: %s", error)
    return JSONResponse({"error": "the prediction store is unavailable; retry later"}, status_code=503)


async def http_error(_: Request, error: HTTPException) -> JSONResponse:
    return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)
