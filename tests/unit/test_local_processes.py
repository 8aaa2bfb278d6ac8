"""Local servers for the tests, the demo and the benchmarks: started, awaited, stopped; a server that dies
says why with its own log."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest

from textclf.runtime.local_processes import free_port, running_server, start_server

pytestmark = pytest.mark.unit


def test_a_server_is_yielded_once_it_answers_and_stopped_after(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    with running_server(command, f"http://127.0.0.1:{port}/", tmp_path / "server.log", timeout=60) as process:
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    assert process.poll() is not None


def test_a_server_that_exits_first_fails_with_its_log(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; print('cannot bind: port taken'); sys.exit(3)"]
    log = tmp_path / "server.log"
    with (
        pytest.raises(RuntimeError, match=r"(?s)exited with code 3.*cannot bind: port taken"),
        running_server(command, f"http://127.0.0.1:{free_port()}/", log, timeout=60),
    ):
        pytest.fail("a server that exited must not be yielded")


def test_a_server_that_never_answers_is_stopped_and_fails_with_its_log(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = [
        sys.executable,
        "-c",
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
        "print('warming up', flush=True); time.sleep(600)",
    ]
    with pytest.raises(RuntimeError, match=r"(?s)did not answer within 2 s.*warming up"):
        start_server(command, f"http://127.0.0.1:{free_port()}/", tmp_path / "server.log", timeout=2)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
