"""Everything textclf takes from KServe, in one module: the predictor's HTTP and gRPC servers composed from KServe's
public parts (its data plane, its v1 and v2 routes, its exception handlers, its gRPC server), with no private
attribute set and no KServe method replaced. `tests/unit/test_kserve_app.py` checks each upstream behaviour relied
on here, so a KServe release that changes one fails a test instead of the server.

Read in the pinned kserve 0.21.0 (constraints.txt), the installed wheel's `kserve/` package:
- `model_server.py` `ModelServer.start`: builds `RESTServer` and `GRPCServer` around one `DataPlane` and one
  `ModelRepositoryExtension`; its REST server binds 0.0.0.0 and names no HTTP protocol, and its gRPC server shares
  the REST side's repository extension, with no hook to change either. Composing the parts instead gives the
  server a host, the request-head limits (`http_protocol.py`) and a gRPC side whose repository RPCs are refused.
- `protocol/rest/server.py` `RESTServer.create_application`: adds timing_asgi's `TimingMiddleware` (it matches
  every route again and reads the process's CPU time twice per request, for a log line dropped unless
  `kserve.trace` is at INFO), registers the `/` and `/metrics` routes, the v1 and v2 routes
  (`register_v1_endpoints`, `register_v2_endpoints`) and the exception handlers; the same here, without the timing
  middleware unless that log is on.
- `protocol/grpc/server.py` `GRPCServer(port, data_plane, model_repository_extension, kwargs)`: its servicer
  serves the repository RPCs through the extension it is given; the message limits come from `kwargs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from importlib import metadata

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import ORJSONResponse
from grpc_interceptor.exceptions import PermissionDenied
from kserve import Model, ModelRepository
from kserve.constants.constants import MAX_GRPC_MESSAGE_LENGTH
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
    generic_exception_handler,
    inference_error_handler,
    invalid_input_handler,
    model_not_found_handler,
    model_not_ready_handler,
    not_implemented_error_handler,
    server_not_live_handler,
    server_not_ready_handler,
    unsupported_protocol_error_handler,
)
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import PrintTimings, metrics_handler
from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
from kserve.protocol.rest.v2_endpoints import register_v2_endpoints
from timing_asgi import TimingMiddleware
from timing_asgi.integrations import StarletteScopeToName

from textclf.serving.http_protocol import head_limited_protocol

logger = logging.getLogger(__name__)

EXCEPTION_HANDLERS: tuple[tuple[type[BaseException], Callable], ...] = (
    (InvalidInput, invalid_input_handler),
    (InferenceError, inference_error_handler),
    (ModelNotFound, model_not_found_handler),
    (ModelNotReady, model_not_ready_handler),
    (NotImplementedError, not_implemented_error_handler),
    (UnsupportedProtocol, unsupported_protocol_error_handler),
    (ServerNotLive, server_not_live_handler),
    (ServerNotReady, server_not_ready_handler),
    (Exception, generic_exception_handler),
)
"""KServe's exception handlers, as its REST server registers them (`RESTServer._add_exception_handlers`)."""
GRPC_WORKERS = 4
"""Threads of the gRPC server's executor: KServe's default `--max_threads`."""
KEEP_ALIVE_SECONDS = 65
GRACEFUL_SHUTDOWN_SECONDS = 30
"""KServe's defaults (`--timeout-keep-alive`, `ModelServer(grace_period=...)`)."""


class ReloadingRepository(ModelRepository):
    """The v2 model-repository `load` re-resolves the model's reference and swaps the new version in without a
    restart: how a local deploy switches a running server to a new champion. `unload` keeps the model registered
    but not ready (KServe's own would stop its inference thread and forget it, after which nothing could load it
    again): requests get a 503 until `load`."""

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.update(model)
        self.model = model

    async def load(self, name: str) -> bool:
        if name != self.model.name:
            raise ModelNotFound(name)
        await asyncio.get_running_loop().run_in_executor(None, self.model.reload)
        self.update(self.model)
        return self.model.ready

    def unload(self, name: str) -> None:
        if name != self.model.name:
            raise KeyError(name)  # KServe's repository extension answers this with 404
        self.model.unload()


class RefusedRepositoryExtension(ModelRepositoryExtension):
    """The model-repository RPCs over gRPC: refused, because gRPC requests bypass the HTTP middleware that checks
    the admin token. Load and unload over HTTP, with the token."""

    REFUSAL = "model load and unload are not offered over gRPC: use POST /v2/repository/models/NAME/load over HTTP"

    async def load(self, model_name: str) -> None:
        raise PermissionDenied(details=self.REFUSAL)

    async def unload(self, model_name: str) -> None:
        raise PermissionDenied(details=self.REFUSAL)


def inference_app() -> FastAPI:
    """An app like KServe's own (`kserve.model_server.app`), for one server's routes."""
    return FastAPI(
        title="textclf serving",
        version=metadata.version("textclf"),
        docs_url=None,
        redoc_url=None,
        default_response_class=ORJSONResponse,
    )


class PredictorServer:
    """KServe's REST routes on `app` and, with `grpc_port`, its gRPC server, for one model."""

    def __init__(
        self, app: FastAPI, model: Model, host: str, http_port: int, grpc_port: int, max_message_bytes: int
    ) -> None:
        self.app, self.model = app, model
        self.repository = ReloadingRepository(model)
        dataplane = DataPlane(model_registry=self.repository)
        router = APIRouter()
        router.add_api_route("/", dataplane.live)
        router.add_api_route("/metrics", metrics_handler, methods=["GET"])
        app.include_router(router)
        extension = ModelRepositoryExtension(model_registry=self.repository)
        register_v1_endpoints(app, dataplane, extension)
        register_v2_endpoints(app, dataplane, extension)
        for error, handler in EXCEPTION_HANDLERS:
            app.add_exception_handler(error, handler)
        if logging.getLogger("kserve.trace").isEnabledFor(logging.INFO):
            app.add_middleware(
                TimingMiddleware, client=PrintTimings(), metric_namer=StarletteScopeToName("kserve.io", app)
            )
        self.http = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=http_port,
                http=head_limited_protocol(),
                log_config=None,
                timeout_keep_alive=KEEP_ALIVE_SECONDS,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            )
        )
        self.grpc = (
            GRPCServer(
                grpc_port,
                dataplane,
                RefusedRepositoryExtension(self.repository),
                kwargs={
                    "grpc_max_send_message_length": MAX_GRPC_MESSAGE_LENGTH,
                    "grpc_max_receive_message_length": max_message_bytes,
                },
            )
            if grpc_port
            else None
        )

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT. uvicorn raises the signal that stopped it again once it has shut down,
        to the handler installed before it started (uvicorn 0.55, `Server.capture_signals`): with the default one,
        SIGTERM would end the process there, before the gRPC server and the model are stopped. The handler here
        lets the re-raised signal pass, and ends the process as the default would for one that comes earlier."""
        for stopping in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stopping, self._stop_unless_uvicorn_is_stopping)
        asyncio.run(self.serve())

    def _stop_if_grpc_failed(self, grpc: asyncio.Task) -> None:
        """A gRPC server that could not start (its port taken, say) stops the HTTP one too: half a server would
        pass its readiness probe."""
        if not grpc.cancelled() and grpc.exception() is not None:
            logger.error("the gRPC server failed: %r; stopping", grpc.exception())
            self.http.should_exit = True

    def _stop_unless_uvicorn_is_stopping(self, received: int, _frame: object) -> None:
        if not self.http.should_exit:
            raise SystemExit(128 + received)

    async def serve(self) -> None:
        """Serve until uvicorn stops (SIGTERM or SIGINT: requests in flight are answered first, or the gRPC server
        failed), then stop gRPC and the model."""
        grpc = asyncio.create_task(self.grpc.start(GRPC_WORKERS)) if self.grpc is not None else None
        if grpc is not None:
            grpc.add_done_callback(self._stop_if_grpc_failed)
        failed = None
        try:
            await self.http.serve()
        finally:
            if grpc is not None:
                await self.grpc.stop(GRACEFUL_SHUTDOWN_SECONDS)
                if grpc.done():
                    failed = None if grpc.cancelled() else grpc.exception()
                else:
                    grpc.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await grpc
            self.model.stop()
        if failed is not None:
            raise RuntimeError("the gRPC server failed") from failed
