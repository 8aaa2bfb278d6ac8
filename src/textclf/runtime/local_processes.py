"""Servers as local processes on 127.0.0.1: a free port, waiting until one answers, stopping it.

The drift demo, the benchmarks and the tests start `textclf serve`, `textclf monitor` and `mlflow server`
this way."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float, process: subprocess.Popen) -> None:
    """Return once `url` answers 200; fail if the process exits first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop_process(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if the process does not exit in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_server(
    command: list[str], health_url: str, log_path: Path, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`command` as its own process, its output appended to `log_path`, returned once `health_url` answers.
    A server that exits first or never answers is stopped and fails with the end of its log."""
    with log_path.open("a") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        wait_for_http(health_url, timeout, process)
    except (RuntimeError, TimeoutError) as error:
        stop_process(process)
        raise RuntimeError(f"{error}\n--- {log_path} ---\n{log_path.read_text()[-5000:]}") from error
    return process


@contextmanager
def running_server(
    command: list[str], health_url: str, log_path: Path, timeout: float = 180, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """`start_server`, stopped after."""
    process = start_server(command, health_url, log_path, timeout, env)
    try:
        yield process
    finally:
        stop_process(process)
