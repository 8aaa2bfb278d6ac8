"""The server entry point: `textclf serve` and the serving image both run `serve(config)`."""

from __future__ import annotations

import logging
import os
import sys
import warnings

from fastapi.exceptions import FastAPIDeprecationWarning
from kserve.errors import InvalidInput, ModelNotFound

from textclf.config import ServingConfig
from textclf.registry.tracking import default_tracking_uri
from textclf.runtime.logs import JsonFormatter
from textclf.serve.slot import ModelSlot, ServedVersion
from textclf.serving.kserve_app import PredictorServer, inference_app
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


def served_slot(config: ServingConfig, metrics: ServingMetrics, shadow: ShadowModel | None) -> ModelSlot:
    """The configured model's slot, its batches, swaps and answers recorded in the metrics; each answered request
    offered to the shadow model, if any, under the request's id."""

    def swapped(served: ServedVersion) -> None:
        metadata = served.classifier.metadata
        metrics.set_model(config.model_name, served.version, metadata.base_model, served.classifier.backend.name)

    on_answer = (metrics.record_answer, shadow.hand_off) if shadow is not None else (metrics.record_answer,)
    settings = config.slot_settings(default_tracking_uri())
    return ModelSlot(settings, on_batch=metrics.record_batch, on_swap=swapped, on_answer=on_answer)


def build_server(config: ServingConfig, metrics: ServingMetrics) -> tuple[PredictorServer, TextClassifierModel]:
    """The loaded model and its server: textclf's routes and middleware, then KServe's routes (textclf's model
    metadata route answers first)."""
    app = inference_app()
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
        app.router.on_startup.append(request_logger.start)
        app.router.on_shutdown.append(request_logger.close)
    shadow = ShadowModel(config, metrics, request_logger) if config.shadow_model else None
    exchanges_logger = request_logger if config.request_logger_url else None
    model = TextClassifierModel(
        config.model_name,
        served_slot(config, metrics, shadow),
        config.input_limits(),
        shadow=shadow,
        request_logger=exchanges_logger,
    )
    model.load()
    install(
        app,
        model,
        metrics=metrics,
        max_body_bytes=config.max_body_bytes,
        access_log=config.access_log,
        request_logger=exchanges_logger,
        admin_token=config.admin_token.get_secret_value(),
    )
    server = PredictorServer(
        app,
        model,
        host=config.host,
        http_port=config.http_port,
        grpc_port=config.grpc_port,
        # The body limit applies to gRPC messages too.
        max_message_bytes=config.max_body_bytes,
    )
    return server, model


def serve(config: ServingConfig, verbose: bool = False) -> None:
    # oneDNN keeps compiled kernels per input shape; a bounded cache (read when torch first runs) keeps
    # varied traffic from growing it to its default 1,024 entries (~90 MiB more resident memory here).
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
    configure_logging(verbose, config.access_log)
    server, _model = build_server(config, ServingMetrics.create())
    server.run()
