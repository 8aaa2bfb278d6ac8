"""The entry point: `textclf monitor` and the monitoring image both run `serve(config)`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from fastapi import FastAPI

from textclf.config import MonitorConfig
from textclf.monitor.check import DriftChecker
from textclf.monitor.retraining import ClusterLauncher
from textclf.monitor.store import MonitorStore
from textclf.runtime.logs import JsonFormatter


def database_url(config: MonitorConfig) -> str:
    return config.database_url or f"sqlite:///{Path(config.workdir).resolve() / 'monitor.db'}"


def tracking_uri_of(config: MonitorConfig) -> str:
    from textclf.registry.tracking import default_tracking_uri

    return config.tracking_uri or default_tracking_uri(Path(config.training_workdir))


def build_app(config: MonitorConfig, launch_on_cluster: ClusterLauncher | None = None) -> FastAPI:
    """The store (created if new), the checker and the app over them. `launch_on_cluster` starts retraining runs
    on Kubeflow Pipelines when `kfp_host` is set (the composition root passes it)."""
    from textclf.monitoring.app import create_app

    Path(config.workdir).mkdir(parents=True, exist_ok=True)
    store = MonitorStore(database_url(config), config.store_bounds()).create()
    checker = DriftChecker(config, store, tracking_uri_of(config), launch_on_cluster)
    return create_app(config, store, checker)


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        library_logger = logging.getLogger(name)
        library_logger.handlers[:] = []
        library_logger.propagate = True
    logging.getLogger("textclf").setLevel(logging.INFO)


def bounded_http(trusted_proxies: str = "") -> dict:
    """uvicorn settings for a server anyone may reach: every request head within a deadline and a size bound
    (`serving.http_protocol`), and X-Forwarded-For believed only from `trusted_proxies` (uvicorn trusts 127.0.0.1
    by default)."""
    from textclf.serving.http_protocol import head_limited_protocol

    return {
        "http": head_limited_protocol(),
        "proxy_headers": bool(trusted_proxies),
        "forwarded_allow_ips": trusted_proxies or None,
    }


def serve(config: MonitorConfig, verbose: bool = False, launch_on_cluster: ClusterLauncher | None = None) -> None:
    """One server for the app, listening on `port` and, when set, on `events_port` too."""
    import socket

    import uvicorn

    configure_logging(verbose)
    app = build_app(config, launch_on_cluster)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_config=None,
            access_log=verbose,
            **bounded_http(config.trusted_proxies),
        )
    )
    if not config.events_port:
        server.run()
        return
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sockets = [socket.create_server((config.host, port), family=family) for port in (config.port, config.events_port)]
    server.run(sockets=sockets)
