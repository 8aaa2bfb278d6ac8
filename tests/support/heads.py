"""Clients that send request heads the way an attacker does, over raw sockets: a byte at a time and never
finished, or far over the size bound."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit


def address_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def read_until_closed(connection: socket.socket) -> bytes:
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    return answer


def dribble_a_head(url: str, every_seconds: float = 0.1, timeout: float = 120) -> tuple[bytes, float]:
    """A head sent a byte at a time and never finished; what the server answered before it closed the connection,
    and after how many seconds."""
    started = time.monotonic()
    with socket.create_connection(address_of(url), timeout=timeout) as connection:
        try:
            for byte in b"GET / HTTP/1.1\r\nhost: localhost\r\nx-slow: " + b"a" * 100_000:
                connection.sendall(bytes([byte]))
                time.sleep(every_seconds)
                if time.monotonic() - started > timeout:
                    break
        except OSError:  # the server closed the connection: what it said before is still readable
            pass
        return read_until_closed(connection), time.monotonic() - started


def send_an_oversized_head(url: str, head_bytes: int, pieces: int = 1) -> bytes:
    """A head of `head_bytes` sent in `pieces` writes; what the server answered."""
    head = b"GET / HTTP/1.1\r\nhost: localhost\r\nx-padding: " + b"a" * head_bytes + b"\r\n\r\n"
    piece = len(head) // pieces + 1
    with socket.create_connection(address_of(url), timeout=60) as connection:
        try:
            for start in range(0, len(head), piece):
                connection.sendall(head[start : start + piece])
        except OSError:
            pass
        return read_until_closed(connection)
