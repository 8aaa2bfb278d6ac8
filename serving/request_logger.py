"""KServe-style request logging: each inference request and its response go to a URL as CloudEvents.

On a cluster KServe's agent does this from `spec.predictor.logger`; `textclf serve --request-logger-url`
does the same locally, in the same format (binary-mode CloudEvents, `ce-id` shared by request and response,
types `org.kubeflow.serving.inference.request|response`), so the monitoring service has one input format.
Sending never delays or fails a prediction: events go through a bounded queue and are dropped (and counted)
when the sink is slow or away.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httpx
from prometheus_client import REGISTRY, CollectorRegistry, Counter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoggedEvent:
    event_type: str
    request_id: str
    body: bytes
    content_type: str
    endpoint: str
    model_version: str


class RequestLogger:
    def __init__(
        self,
        url: str,
        model_name: str,
        source: str = "http://localhost/textclf-serve",
        queue_size: int = 10_000,
        registry: CollectorRegistry = REGISTRY,
    ):
        self.url = url
        self.model_name = model_name
        self.source = source
        self._queue: asyncio.Queue[LoggedEvent] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task | None = None
        self.sent = Counter("textclf_request_log_events", "CloudEvents sent to the request logger", registry=registry)
        self.dropped = Counter(
            "textclf_request_log_dropped", "CloudEvents dropped (queue full or sink failing)", registry=registry
        )

    def log(self, event: LoggedEvent) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._send_forever())
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped.inc()

    def headers(self, event: LoggedEvent) -> dict[str, str]:
        return {
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

    async def _send_forever(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                event = await self._queue.get()
                try:
                    response = await client.post(self.url, content=event.body, headers=self.headers(event))
                    response.raise_for_status()
                    self.sent.inc()
                except httpx.HTTPError as error:
                    self.dropped.inc()
                    logger.warning("request logger could not deliver event %s: %s", event.request_id, error)
