"""`textclf serve` and `textclf monitor` as real processes on free 127.0.0.1 ports, an HTTP sink that
records what a request logger sends, and an ASGI app under a real uvicorn server in this process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from textclf.runtime.local_processes import free_port, running_server, start_server, stop_process

__all__ = [
    "SERVING_TEST_LIMITS",
    "EventSink",
    "RunningMonitor",
    "RunningServer",
    "free_port",
    "monitor_server",
    "start_monitor",
    "textclf_server",
    "uvicorn_in_thread",
]


@dataclass
class EventSink:
    """A real HTTP endpoint that records what the request logger sends (headers and body per event)."""

    url: str
    events: list[dict]

    def events_with_id(self, event_id: str, count: int, timeout: float = 20) -> list[dict]:
        """The events whose `ce-id` is `event_id`, once `count` of them arrived (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [event for event in list(self.events) if event["headers"].get("ce-id") == event_id]
            if len(matching) >= count or time.monotonic() > deadline:
                return matching
            time.sleep(0.1)


@dataclass
class RunningServer:
    url: str
    grpc_target: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def json_log_records(self, wanted: Callable[[dict], bool], timeout: float = 10) -> list[dict]:
        """The JSON log records `wanted` accepts, once there is one (or the timeout passed).

        The access log is written after the response has gone out, so a client can read the log before its line."""
        deadline = time.monotonic() + timeout
        while True:
            records = [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]
            matching = [record for record in records if wanted(record)]
            if matching or time.monotonic() > deadline:
                return matching
            time.sleep(0.1)


@contextmanager
def textclf_server(workdir: Path, *options: str, env: dict[str, str] | None = None) -> Iterator[RunningServer]:
    """`textclf serve` as its own process on free 127.0.0.1 ports; stopped (SIGTERM, then SIGKILL) after."""
    http_port, grpc_port = free_port(), free_port()
    log_path = workdir / f"serve-{http_port}.log"
    command = [
        sys.executable,
        "-m",
        "textclf.cli",
        "serve",
        "--port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        *options,
    ]
    url = f"http://127.0.0.1:{http_port}"
    with running_server(command, f"{url}/health", log_path, env={**os.environ, **(env or {})}) as process:
        yield RunningServer(url, f"127.0.0.1:{grpc_port}", process, log_path)


# Small limits, so the limit cases need small requests.
SERVING_TEST_LIMITS = (
    "max_texts_per_request=8",
    "max_body_bytes=65536",
    "max_text_chars=20000",
    "max_explain_texts=4",
    "max_explain_request_words=1000",
)
ADMIN_TOKEN = "test-admin-token"
"""The model-repository routes' token of `admin_server` (conftest.py)."""


def admin(token: str = ADMIN_TOKEN) -> dict[str, str]:
    """The header that presents `token` to the model-repository routes."""
    return {"authorization": f"Bearer {token}"}


@dataclass
class RunningMonitor:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()


def start_monitor(workdir: Path, port: int, *options: str) -> RunningMonitor:
    """`textclf monitor` as its own process on 127.0.0.1:`port`, answering /health."""
    log_path = workdir / f"monitor-{port}.log"
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "textclf.cli", "monitor", "--port", str(port), "--workdir", str(workdir), *options]
    return RunningMonitor(url, start_server(command, f"{url}/health", log_path, timeout=120), log_path)


@contextmanager
def monitor_server(workdir: Path, *options: str) -> Iterator[RunningMonitor]:
    """A monitor on a free port, stopped (SIGTERM, then SIGKILL) after."""
    monitor = start_monitor(workdir, free_port(), *options)
    try:
        yield monitor
    finally:
        stop_process(monitor.process)


def create_database(server_url: str, name: str) -> str:
    """A new database on the PostgreSQL server of `server_url`; returns its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@contextmanager
def uvicorn_in_thread(app: object, **settings: object) -> Iterator[str]:
    """`app` served by uvicorn on a free 127.0.0.1 port in a thread of this process (so a test can reach into the
    app and read its logs); yields the server's URL."""
    import uvicorn

    listener = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off", **settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
