"""The server entry point: `textclf serve` and the serving image both run `serve(config)`."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import warnings
from typing import Any

from fastapi.exceptions import FastAPIDeprecationWarning
from grpc_interceptor.exceptions import PermissionDenied
from kserve import ModelRepository, ModelServer
from kserve.errors import InvalidInput, ModelNotFound
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from textclf.config import ServingConfig
from textclf.runtime.logs import JsonFormatter
from textclf.serving.http_protocol import head_limited_protocol
from textclf.serving.middleware import ServingMiddleware
from textclf.serving.model import TextClassifierModel
from textclf.serving.prometheus import ServingMetrics
from textclf.serving.request_logger import RequestLogger
from textclf.serving.routes import install
from textclf.serving.shadow import ShadowModel


class ClientErrorFilter(logging.Filter):
    """KServe logs every rejected request as an error with a traceback; a client's mistake is not the
    server's error, and the access log already records the 4xx."""

    CLIENT_ERRORS = (InvalidInput, ModelNotFound)

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], self.CLIENT_ERRORS))


def configure_logging(verbose: bool, access_log: bool) -> None:
    """Structured and quiet: warnings, plus one access line per request when asked for."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # KServe configures its own handlers only when its logger has none; ours propagate to the root instead.
    for name in ("kserve", "kserve.trace", "uvicorn", "uvicorn.error", "uvicorn.access"):
        library_logger = logging.getLogger(name)
        library_logger.handlers[:] = [logging.NullHandler()]
        library_logger.propagate = True
        library_logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("kserve").addFilter(ClientErrorFilter())
    # KServe's app still declares ORJSONResponse, which FastAPI now warns about on every request.
    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
    # The access log is ours (structured, with request ids); uvicorn's would duplicate it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("textclf.access").setLevel(logging.INFO if access_log else logging.WARNING)


class ReloadingRepository(ModelRepository):
    """The v2 model-repository `load` re-resolves the model's reference and swaps the new version in
    without a restart: how a local deploy switches a running server to a new champion. `unload` keeps the
    model registered but not ready (KServe's own would stop its inference thread and forget it, after which
    nothing could load it again): requests get a 503 until `load`."""

    def __init__(self) -> None:
        super().__init__()
        self._known: dict[str, TextClassifierModel] = {}

    def update(self, model: TextClassifierModel, name: str | None = None) -> None:
        super().update(model, name)
        self._known[name or model.name] = model

    async def load(self, name: str) -> bool:
        model = self._known.get(name)
        if model is None:
            raise ModelNotFound(name)
        model.unloaded = False
        await asyncio.get_running_loop().run_in_executor(None, model.load)
        self.update(model, name)
        return model.ready

    def unload(self, name: str) -> None:
        model = self._known.get(name)
        if model is None:
            raise KeyError(name)  # KServe's repository extension answers this with 404
        model.unload()


class RefusedRepositoryExtension(ModelRepositoryExtension):
    """The model-repository RPCs over gRPC: refused, because gRPC requests bypass the HTTP middleware that
    checks the admin token. Load and unload over HTTP, with the token."""

    REFUSAL = "model load and unload are not offered over gRPC: use POST /v2/repository/models/NAME/load over HTTP"

    async def load(self, model_name: str) -> None:
        raise PermissionDenied(details=self.REFUSAL)

    async def unload(self, model_name: str) -> None:
        raise PermissionDenied(details=self.REFUSAL)


class LocalModelServer(ModelServer):
    """KServe's ModelServer listening on a chosen interface (its REST server binds 0.0.0.0 otherwise), with a
    deadline and a size bound on every request head."""

    def __init__(self, host: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.host = host

    def setup_event_loop(self) -> None:
        if self._rest_server is not None:
            self._rest_server.config.host = self.host
            # KServe's uvicorn config names no protocol (kserve 0.21.0, protocol/rest/server.py `RESTServer`);
            # uvicorn resolves `http` when the server starts, after this hook.
            self._rest_server.config.http = head_limited_protocol()
        if self._grpc_server is not None:
            # ModelServer.start builds the gRPC server with the shared repository extension and starts it only
            # after this hook (kserve 0.21.0, model_server.py `start`; protocol/grpc/server.py builds its
            # servicer from `_model_repository_extension`): the gRPC side gets one that refuses.
            self._grpc_server._model_repository_extension = RefusedRepositoryExtension(self.registered_models)
        super().setup_event_loop()


def build_server(config: ServingConfig, metrics: ServingMetrics) -> tuple[LocalModelServer, TextClassifierModel]:
    """The loaded model and a server with textclf's routes and middleware installed on KServe's app."""
    from kserve import model_server

    model = TextClassifierModel(config.model_name, config, metrics)
    # On a cluster KServe's agent logs requests and responses, and the predictor sends only shadow events.
    events_url = config.request_logger_url or (config.shadow_events_url if config.shadow_model else "")
    request_logger = (
        RequestLogger(
            events_url,
            config.model_name,
            buffer_bytes=config.request_logger_buffer_bytes,
            token=config.request_logger_token.get_secret_value(),
            flush_seconds=config.request_logger_flush_seconds,
            spool_dir=config.request_logger_spool_dir,
        )
        if events_url
        else None
    )
    if request_logger is not None:
        # Uvicorn runs these around serving: the shutdown hook after requests in flight are answered on SIGTERM
        # (uvicorn `Server.shutdown`), so their events are in the buffer it flushes.
        model_server.app.router.on_startup.append(request_logger.start)
        model_server.app.router.on_shutdown.append(request_logger.close)
    if config.request_logger_url:
        model.request_logger = request_logger
    if config.shadow_model:
        model.shadow = ShadowModel(config, metrics, request_logger)
    model.load()
    install(
        model_server.app,
        model,
        ServingMiddleware,
        metrics=metrics,
        model=model,
        max_body_bytes=config.max_body_bytes,
        access_log=config.access_log,
        request_logger=request_logger if config.request_logger_url else None,
        admin_token=config.admin_token.get_secret_value(),
    )
    # KServe reads the gRPC message limits from its parsed arguments; the body limit applies to gRPC too.
    model_server.args.grpc_max_receive_message_length = config.max_body_bytes
    server = LocalModelServer(
        host=config.host,
        http_port=config.http_port,
        grpc_port=config.grpc_port or 8081,
        enable_grpc=config.grpc_port > 0,
        workers=1,
        registered_models=ReloadingRepository(),
        enable_docs_url=False,
        enable_latency_logging=False,
    )
    return server, model


def serve(config: ServingConfig, verbose: bool = False) -> None:
    # oneDNN keeps compiled kernels per input shape; a bounded cache (read when torch first runs) keeps
    # varied traffic from growing it to its default 1,024 entries (~90 MiB more resident memory here).
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
    configure_logging(verbose, config.access_log)
    server, model = build_server(config, ServingMetrics.create())
    server.start([model])
