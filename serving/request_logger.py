"""KServe-style request logging: each inference request and its response go to a URL as CloudEvents.

On a cluster KServe's agent does this from `spec.predictor.logger`; `textclf serve --request-logger-url`
does the same locally, in the same format (binary-mode CloudEvents, `ce-id` shared by request and response,
types `org.kubeflow.serving.inference.request|response`), so the monitoring service has one input format.

Delivery is at least once: an event stays in a buffer, bounded in bytes, until the sink acknowledges it. While
the sink cannot be reached the events wait in order, retried with exponential backoff. An event the sink answers
with a 5xx (or 408, 429) goes behind the others and is tried again, at most `MAX_ATTEMPTS` times, then given up
(counted as a dead letter): one event the sink cannot take never holds back the ones after it. The monitor stores
each (id, kind) once, so a retry never duplicates. Sending never delays or fails a prediction: when the buffer is
full the new event is dropped. A sink that refuses an event for good (a 4xx other than 408 and 429: a bad token,
a model name it does not monitor, a payload it cannot store) gets it dropped at once. Every event given up is
counted by reason; the log says so at most once per `DROP_LOG_SECONDS`, with the counts since.

A graceful stop (SIGTERM, as a rolling update sends) flushes: `close` keeps delivering for at most `flush_seconds`,
then writes what is left to `spool_dir` (an emptyDir on a cluster), which the next start sends first; without a spool
directory the events left are counted (reason `shutdown`) and logged.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import enum
import logging
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import orjson
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from textclf.monitor.events import REQUEST_EVENT, RESPONSE_EVENT
from textclf.runtime.logs import ThrottledLog

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.1
LONGEST_RETRY_SECONDS = 5.0
RETRIED_STATUSES = frozenset({408, 429})
MAX_ATTEMPTS = 8
"""Answers of 5xx (or 408, 429) an event may get before it is given up: with the backoff, 5 to 12 s of trying."""
DROP_LOG_SECONDS = 60.0
FLUSH_POLL_SECONDS = 0.02


class Delivery(enum.Enum):
    DELIVERED = "delivered"
    REFUSED = "refused"
    """A 4xx for good: this event will never be taken."""
    FAILED = "failed"
    """The sink answered, but could not take it now (5xx, 408, 429): try it again, after the others."""
    UNREACHABLE = "unreachable"
    """No answer in time: the sink is away or overloaded, and every event waits, in order."""


@dataclass(frozen=True)
class LoggedEvent:
    event_type: str
    request_id: str
    body: bytes
    content_type: str
    endpoint: str
    model_version: str

    @property
    def size(self) -> int:
        return len(self.body) + len(self.request_id) + len(self.content_type) + 256

    def spooled(self) -> bytes:
        """One line of a spool file."""
        fields = asdict(self)
        fields["body"] = base64.b64encode(self.body).decode()
        return orjson.dumps(fields) + b"\n"

    @classmethod
    def from_spool(cls, line: bytes) -> LoggedEvent:
        fields = orjson.loads(line)
        fields["body"] = base64.b64decode(fields["body"])
        return cls(**fields)


@dataclass
class _Queued:
    event: LoggedEvent
    attempts: int = 0
    """Answers of 5xx (or 408, 429) so far."""


def header_value(value: str) -> str:
    """A header value any HTTP client sends: printable ASCII, anything else percent-escaped."""
    return "".join(char if " " <= char <= "~" else f"%{ord(char):02X}" for char in value)


class RequestLogger:
    def __init__(
        self,
        url: str,
        model_name: str,
        source: str = "http://localhost/textclf-serve",
        buffer_bytes: int = 64 * 1024 * 1024,
        token: str = "",
        registry: CollectorRegistry = REGISTRY,
        flush_seconds: float = 10.0,
        spool_dir: str = "",
    ):
        self.url = url
        self.model_name = model_name
        self.source = source
        self.buffer_bytes = buffer_bytes
        self.token = token
        self.flush_seconds = flush_seconds
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self._closed = False
        self._pending: collections.deque[_Queued] = collections.deque()
        self._pending_bytes = 0
        self._drop_lines = ThrottledLog(DROP_LOG_SECONDS)
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self.sent = Counter("textclf_request_log_events", "CloudEvents the sink acknowledged", registry=registry)
        self.dropped = Counter(
            "textclf_request_log_dropped",
            "CloudEvents given up on: buffer_full, refused (a 4xx for good), dead_letter (MAX_ATTEMPTS 5xx answers), "
            "shutdown (unsent at a stop, with no spool directory)",
            ["reason"],
            registry=registry,
        )
        self.retries = Counter("textclf_request_log_retries", "failed deliveries, retried later", registry=registry)
        self.buffered = Gauge("textclf_request_log_buffered_bytes", "bytes awaiting delivery", registry=registry)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def log(self, event: LoggedEvent) -> None:
        """Queue an event for delivery (from the event loop); drop and count it when the buffer is full. After
        `close` (gRPC still answers while HTTP has stopped) it goes straight to the spool."""
        if self._closed:
            self._leave([event])
            return
        self.start()
        self._enqueue(event)
        self._wakeup.set()

    def log_exchange(
        self,
        request_id: str,
        request_body: bytes,
        response_body: bytes,
        endpoint: str,
        version: str,
        request_type: str = "application/json",
        response_type: str = "application/json",
    ) -> None:
        """An answered exchange as its two events, request and response."""
        for event_type, body, content_type in (
            (REQUEST_EVENT, request_body, request_type),
            (RESPONSE_EVENT, response_body, response_type),
        ):
            self.log(LoggedEvent(event_type, request_id, body, content_type, endpoint, version))

    def start(self) -> None:
        """Start delivering (from the event loop): what an earlier stop spooled first, then new events."""
        if self._worker is not None and not self._worker.done():
            return
        self._wakeup = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._deliver_forever())
        for event in self._read_spool():
            self._enqueue(event)
        if self._pending:
            self._wakeup.set()

    async def close(self) -> None:
        """A graceful stop: deliver for at most `flush_seconds`, then spool (or count and log) what is left."""
        deadline = time.monotonic() + self.flush_seconds
        while self._pending and self._worker is not None and not self._worker.done() and time.monotonic() < deadline:
            await asyncio.sleep(FLUSH_POLL_SECONDS)
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
        left = [queued.event for queued in self._pending]
        self._pending.clear()
        self._pending_bytes = 0
        self.buffered.set(0)
        self._leave(left)

    def _enqueue(self, event: LoggedEvent) -> None:
        if self._pending_bytes + event.size > self.buffer_bytes:
            self._drop(event, "buffer_full", f"the {self.buffer_bytes}-byte buffer is full")
            return
        self._pending.append(_Queued(event))
        self._pending_bytes += event.size
        self.buffered.set(self._pending_bytes)

    def _leave(self, events: list[LoggedEvent]) -> None:
        """Events this process will not send: into a new spool file, or counted and logged as lost."""
        if not events:
            return
        if self.spool_dir is not None:
            try:
                self.spool_dir.mkdir(parents=True, exist_ok=True)
                path = self.spool_dir / f"events-{time.time_ns()}-{os.getpid()}.jsonl"
                partial = path.with_suffix(".partial")
                partial.write_bytes(b"".join(event.spooled() for event in events))
                partial.replace(path)  # whole or absent: the next start never reads half a file
                logger.warning("request log: %d unsent events spooled to %s for the next start", len(events), path)
                return
            except OSError as error:
                why = f"the spool directory {self.spool_dir} cannot be written ({error})"
        else:
            why = "no spool directory is set (request_logger_spool_dir)"
        self.dropped.labels("shutdown").inc(len(events))
        logger.warning(
            "request log: %d events (%d bytes) not sent before the stop and lost: %s",
            len(events), sum(event.size for event in events), why,
        )  # fmt: skip

    def _read_spool(self) -> list[LoggedEvent]:
        """What earlier stops spooled, oldest first; each file is removed once read."""
        if self.spool_dir is None or not self.spool_dir.is_dir():
            return []
        events, unreadable = [], 0
        for path in sorted(self.spool_dir.glob("events-*.jsonl")):
            # A spool this process cannot read or remove must not stop the server: unread, it waits; unremoved,
            # its events are sent again by a later start, and the monitor stores each (id, kind) once.
            try:
                lines = path.read_bytes().splitlines()
            except OSError as error:
                logger.warning("request log: spool file %s cannot be read: %s", path, error)
                continue
            try:
                path.unlink()
            except OSError as error:
                logger.warning("request log: spool file %s cannot be removed: %s", path, error)
            for line in lines:
                try:
                    events.append(LoggedEvent.from_spool(line))
                except (ValueError, TypeError, KeyError):
                    unreadable += 1
        if events or unreadable:
            logger.warning(
                "request log: %d events from an earlier stop to send (%d unreadable lines skipped)",
                len(events), unreadable,
            )  # fmt: skip
        return events

    def headers(self, event: LoggedEvent) -> dict[str, str]:
        headers = {
            "ce-specversion": "1.0",
            "ce-id": event.request_id,
            "ce-type": event.event_type,
            "ce-source": self.source,
            "ce-inferenceservicename": self.model_name,
            "ce-component": "predictor",
            "ce-endpoint": event.endpoint,
            "ce-modelversion": event.model_version,
            "content-type": event.content_type,
        }
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return {name: header_value(value) for name, value in headers.items()}

    def _drop(self, event: LoggedEvent, reason: str, why: str) -> None:
        """Count an event given up; log it, or (within DROP_LOG_SECONDS of the last such line) only count it."""
        self.dropped.labels(reason).inc()
        counted = self._drop_lines.due(reason)
        if counted is None:
            return
        counts = ", ".join(f"{count} {name}" for name, count in sorted(counted.items()))
        logger.warning(
            "request log events dropped (%s) since the last such line; the latest, %s (%s): %s",
            counts, event.request_id, event.event_type, why,
        )  # fmt: skip

    def _done(self, queued: _Queued) -> None:
        """The head of the queue (the event just tried) leaves it."""
        self._pending.popleft()
        self._pending_bytes -= queued.event.size
        self.buffered.set(self._pending_bytes)

    async def _deliver_forever(self) -> None:
        delay = FIRST_RETRY_SECONDS
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                if not self._pending:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                queued = self._pending[0]
                outcome = await self._deliver(client, queued.event)
                if outcome in {Delivery.DELIVERED, Delivery.REFUSED}:
                    self._done(queued)
                    delay = FIRST_RETRY_SECONDS
                    continue
                self.retries.inc()
                if outcome is Delivery.FAILED:
                    queued.attempts += 1
                    if queued.attempts >= MAX_ATTEMPTS:
                        self._done(queued)
                        self._drop(queued.event, "dead_letter", f"the sink failed it {MAX_ATTEMPTS} times")
                        continue
                    # Behind the others: whatever this event does to the sink, the next ones go first.
                    self._pending.rotate(-1)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, LONGEST_RETRY_SECONDS)

    async def _deliver(self, client: httpx.AsyncClient, event: LoggedEvent) -> Delivery:
        try:
            response = await client.post(self.url, content=event.body, headers=self.headers(event))
        except Exception as error:  # the sink is away or too slow (or anything else): keep the event, retry in order
            logger.info("request log delivery of %s failed, will retry: %r", event.request_id, error)
            return Delivery.UNREACHABLE
        if response.is_success:
            self.sent.inc()
            return Delivery.DELIVERED
        if response.status_code >= 500 or response.status_code in RETRIED_STATUSES:
            return Delivery.FAILED
        self._drop(event, "refused", f"the sink answered {response.status_code}: {response.text[:300]}")
        return Delivery.REFUSED
