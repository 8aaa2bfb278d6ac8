"""uvicorn's HTTP/1.1 protocol with a deadline and a size bound on every request head, for every textclf server
(the predictor, the monitor and its events port, the UI).

uvicorn bounds neither (0.55, `protocols/http/httptools_impl.py` and `h11_impl.py`): `connection_made` starts no
timer, and `data_received` cancels the keep-alive timer on every byte, so a client that sends a head one byte at a
time holds its connection forever (50 half-sent heads per server were still open after 75 s); httptools buffers a
head of any size (a 64 MB header stalled an event loop for 4.6 s), and h11's bound is h11's alone.

A head is the request line and headers of the next request on a connection. Its deadline starts when the
connection opens and, on a kept-alive connection, at the first byte after the previous response (the idle wait
before it is uvicorn's keep-alive timeout); it ends when the server has parsed the head. A head not parsed by then
gets 408 and the connection is closed (a connection that sent nothing is closed without an answer, as a browser's
unused pre-connection should be); a head past its size bound gets 431.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import h11

from textclf.runtime.wire import MAX_REQUEST_HEAD_BYTES, REQUEST_HEAD_TIMEOUT_SECONDS

logger = logging.getLogger(__name__)

LINGER_SECONDS = 2.0
"""How long a refused connection's further bytes are read and dropped before it is closed."""

# The empty line that ends a head (both parsers accept a bare LF as a line's end).
_HEAD_END = re.compile(rb"\n\r?\n")


class _HeadLimits:
    """Mixed in before one of uvicorn's HTTP/1.1 protocols: `cycle` is that protocol's current request (None before
    the first; its `response_complete` set once answered)."""

    head_timeout_seconds: float = REQUEST_HEAD_TIMEOUT_SECONDS
    max_head_bytes: int = MAX_REQUEST_HEAD_BYTES

    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_bytes = 0
        self._head_tail = b""
        self._head_deadline: asyncio.TimerHandle | None = None
        self._refused = False
        super().connection_made(transport)  # type: ignore[misc]
        self._start_head_deadline()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head():
            self._start_head_deadline()
            room = self.max_head_bytes - self._head_bytes
            # Checked before the parser reads the bytes: httptools would parse a whole head of any size that
            # arrives in one read. The head must end within the bytes it still has room for.
            if len(data) > room and not _HEAD_END.search(self._head_tail + data[: max(room, 0)]):
                self._refuse(431, f"request head over {self.max_head_bytes} bytes")
                return
            self._head_bytes += len(data)
            self._head_tail = (self._head_tail + data)[-3:]
        super().data_received(data)  # type: ignore[misc]
        if not self._awaiting_head():
            self._head_parsed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_parsed()
        super().connection_lost(exc)  # type: ignore[misc]

    def _awaiting_head(self) -> bool:
        """The next bytes are a head: the previous request is read whole (a 413 may answer it before its body is
        read: the rest of that body is no head) and answered."""
        return self._previous_request_read() and (self.cycle is None or self.cycle.response_complete)

    def _previous_request_read(self) -> bool:
        raise NotImplementedError

    def _start_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.head_timeout_seconds, self._head_deadline_passed)

    def _head_parsed(self) -> None:
        self._head_bytes = 0
        self._head_tail = b""
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_deadline_passed(self) -> None:
        self._head_deadline = None
        if not self._awaiting_head() or self.transport.is_closing():
            return
        if self._head_bytes:
            self._refuse(408, f"request head not received within {self.head_timeout_seconds:g} s")
        else:
            self.transport.close()

    def _refuse(self, status: int, reason: str) -> None:
        """Answers `status` and ends the connection. The bytes the client is still sending are read and dropped for
        a moment first (a lingering close, as nginx does): closing with them unread resets the connection, and the
        client loses the answer."""
        logger.info("request head refused", extra={"status": status, "reason": reason})
        self._head_parsed()
        self._refused = True
        body = reason.encode()
        phrase = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, phrase, len(body), body)
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


class _HttpToolsHeadLimits(_HeadLimits):
    _reading_request = False

    def on_headers_complete(self) -> None:
        self._reading_request = True
        super().on_headers_complete()  # type: ignore[misc]

    def on_message_complete(self) -> None:
        self._reading_request = False
        super().on_message_complete()  # type: ignore[misc]

    def _previous_request_read(self) -> bool:
        return not self._reading_request


class _H11HeadLimits(_HeadLimits):
    conn: Any

    def _previous_request_read(self) -> bool:
        return self.conn.their_state is h11.IDLE


def head_limited_protocol(
    timeout_seconds: float = REQUEST_HEAD_TIMEOUT_SECONDS,
    max_head_bytes: int = MAX_REQUEST_HEAD_BYTES,
    implementation: str = "auto",
) -> type:
    """One of uvicorn's HTTP/1.1 protocols with the head limits; pass it as uvicorn's `http` setting.
    `implementation`: "httptools", "h11", or "auto" (httptools where installed, as uvicorn's own `auto` picks)."""
    if implementation == "auto":
        try:
            import httptools  # noqa: F401

            implementation = "httptools"
        except ImportError:
            implementation = "h11"
    if implementation == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        limits, base = _HttpToolsHeadLimits, HttpToolsProtocol
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        limits, base = _H11HeadLimits, H11Protocol
    return type(
        f"HeadLimited{base.__name__}",
        (limits, base),
        {"head_timeout_seconds": timeout_seconds, "max_head_bytes": max_head_bytes},
    )
