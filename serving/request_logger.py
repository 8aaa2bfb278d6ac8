"""KServe-style request logging: each inference request and its response go to a URL as CloudEvents.

On a cluster KServe's agent does this from `spec.predictor.logger`; `textclf serve --request-logger-url`
does the same locally, in the same format (binary-mode CloudEvents, `ce-id` shared by request and response,
types `org.kubeflow.serving.inference.request|response`), so the monitoring service has one input format.

Delivery is at least once: an event stays in a buffer, bounded in bytes, until the sink acknowledges it;
failures are retried with exponential backoff, in order. The monitor stores each (id, kind) once, so a
retry never duplicates. Sending never delays or fails a prediction: when the buffer is full the new event is
dropped, and every dropped event is counted and logged. A sink that refuses an event for good (a 4xx other
than 408 and 429: a bad token, a model name it does not monitor) gets it dropped the same way.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from dataclasses import dataclass

import httpx
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.1
LONGEST_RETRY_SECONDS = 5.0
RETRIED_STATUSES = frozenset({408, 429})


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
    ):
        self.url = url
        self.model_name = model_name
        self.source = source
        self.buffer_bytes = buffer_bytes
        self.token = token
        self._pending: collections.deque[LoggedEvent] = collections.deque()
        self._pending_bytes = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self.sent = Counter("textclf_request_log_events", "CloudEvents the sink acknowledged", registry=registry)
        self.dropped = Counter(
            "textclf_request_log_dropped",
            "CloudEvents given up on (buffer full, or refused by the sink for good)",
            ["reason"],
            registry=registry,
        )
        self.retries = Counter("textclf_request_log_retries", "failed deliveries, retried later", registry=registry)
        self.buffered = Gauge("textclf_request_log_buffered_bytes", "bytes awaiting delivery", registry=registry)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def log(self, event: LoggedEvent) -> None:
        """Queue an event for delivery (from the event loop); drop and count it when the buffer is full."""
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._deliver_forever())
        if self._pending_bytes + event.size > self.buffer_bytes:
            self._drop(event, "buffer_full", f"the {self.buffer_bytes}-byte buffer is full")
            return
        self._pending.append(event)
        self._pending_bytes += event.size
        self.buffered.set(self._pending_bytes)
        self._wakeup.set()

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
        self.dropped.labels(reason).inc()
        logger.warning("request log event %s (%s) dropped: %s", event.request_id, event.event_type, why)

    async def _deliver_forever(self) -> None:
        delay = FIRST_RETRY_SECONDS
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                if not self._pending:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                event = self._pending[0]
                delivered = await self._deliver(client, event)
                if delivered is None:  # not delivered yet: retry the same event after a pause
                    self.retries.inc()
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, LONGEST_RETRY_SECONDS)
                    continue
                delay = FIRST_RETRY_SECONDS
                self._pending.popleft()
                self._pending_bytes -= event.size
                self.buffered.set(self._pending_bytes)

    async def _deliver(self, client: httpx.AsyncClient, event: LoggedEvent) -> bool | None:
        """True once acknowledged, False when refused for good (dropped), None to retry."""
        try:
            response = await client.post(self.url, content=event.body, headers=self.headers(event))
        except Exception as error:  # the sink is away or slow, or anything else: keep the event, retry
            logger.info("request log delivery of %s failed, will retry: %r", event.request_id, error)
            return None
        if response.is_success:
            self.sent.inc()
            return True
        if response.status_code >= 500 or response.status_code in RETRIED_STATUSES:
            return None
        self._drop(event, "refused", f"the sink answered {response.status_code}: {response.text[:300]}")
        return False
