"""Shadow A/B: a second model classifies a share of the champion's requests off the response path.

The champion answers as always; its request's texts and predictions are then queued for the shadow model. The
shadow runs on a thread of its own at the lowest CPU priority (SCHED_IDLE), on ONNX Runtime with one intra-op
thread (no second OpenMP team beside the champion's torch, no thread pool): the kernel gives it only the CPU
time the champion leaves, so under full load it gets almost none, its queue fills, and requests go unshadowed.
The queue is bounded in texts: what does not fit is not shadowed, and counted. Each shadowed request becomes
one `SHADOW_EVENT` CloudEvent under the request's id (the id its request and response events carry) with both
models' predictions and times, sent by the request logger to the monitor, which compares the two (`GET /shadow`,
`textclf compare`).

An alias (`models:/textclf@challenger`) is read again every `shadow_refresh_seconds`, and a newly registered
challenger is loaded on the shadow's thread, at the same low priority.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson

from textclf.config import ServingConfig
from textclf.monitor.events import SHADOW_EVENT
from textclf.registry.model_uri import registry_version, resolve_model
from textclf.registry.tracking import default_tracking_uri
from textclf.serve.classifier import TextClassifier
from textclf.serve.slot import Answer
from textclf.serving.prometheus import ServingMetrics
from textclf.serving.request_logger import LoggedEvent, RequestLogger

logger = logging.getLogger(__name__)

LOWEST_NICE = 19
ONNX_FP32 = "onnx"
"""The shadow's backend: fp32, the closest to the PyTorch weights it was validated with."""
WARMUP_TEXTS = ("warm-up text for the shadow model", "a second, somewhat longer warm-up text " * 8)


def lowest_priority() -> None:
    """Give the calling thread the lowest CPU priority: Linux's SCHED_IDLE policy (it runs only when no other
    thread wants the CPU, and yields it at once when one wakes), else nice 19. Both are per thread on Linux and
    need no privilege."""
    thread = threading.get_native_id()
    try:
        os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
        return
    except (AttributeError, OSError) as error:
        logger.info("SCHED_IDLE refused for the shadow thread (%r): nice %d instead", error, LOWEST_NICE)
    try:
        os.setpriority(os.PRIO_PROCESS, thread, LOWEST_NICE)
    except (AttributeError, OSError) as error:  # not Linux, or not allowed: it still runs, at normal priority
        logger.warning("the shadow thread keeps normal CPU priority: %r", error)


def load_shadow_classifier(directory: Path, export_to: Path) -> TextClassifier:
    """The shadow on ONNX Runtime fp32 with one thread, warmed up."""
    classifier = TextClassifier.load(directory, threads=1, backend=ONNX_FP32, export_to=export_to)
    classifier.predict(list(WARMUP_TEXTS))
    return classifier


def shadowed(request_id: str, percent: float) -> bool:
    """Whether a request is in the shadowed share: decided by its id, so a retried request is decided alike."""
    if percent >= 100:
        return True
    bucket = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") % 10_000
    return bucket < round(percent * 100)


@dataclass(frozen=True)
class ShadowedRequest:
    request_id: str
    texts: list[str]
    champion: list[tuple[str, float]]
    """(label, score) per text, as the champion answered."""
    champion_version: str
    champion_ms: float


@dataclass
class _LoadedShadow:
    classifier: TextClassifier
    version: str
    scratch: tempfile.TemporaryDirectory


class ShadowModel:
    def __init__(self, config: ServingConfig, metrics: ServingMetrics, request_logger: RequestLogger | None):
        self.reference = config.shadow_model
        self.tracking_uri = config.tracking_uri or default_tracking_uri()
        self.percent = config.shadow_percent
        self.queue_texts = config.shadow_queue_texts
        self.max_batch_size = config.max_batch_size
        self.refresh_seconds = config.shadow_refresh_seconds
        self.model_name = config.model_name
        self.metrics = metrics
        self.request_logger = request_logger
        self.loaded: _LoadedShadow | None = None
        self._refresher: asyncio.Task | None = None
        self._queue: collections.deque[ShadowedRequest] = collections.deque()
        self._queued_texts = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="textclf-shadow", initializer=lowest_priority)

    @property
    def version(self) -> str:
        return self.loaded.version if self.loaded else ""

    def load(self) -> None:
        """Resolve the reference now (an alias may have moved) and load it on the shadow's thread. A shadow that
        cannot be loaded is logged and left out (or the one loaded stays): the champion serves without it."""
        scratch = tempfile.TemporaryDirectory(prefix="textclf-shadow-")
        downloads = self.reference.startswith(("models:/", "runs:/"))
        try:
            resolved = resolve_model(self.reference, self.tracking_uri, Path(scratch.name) if downloads else None)
            classifier = self._thread.submit(
                load_shadow_classifier, resolved.directory, Path(scratch.name) / "onnx-export"
            ).result()
        except Exception as error:  # a missing challenger must not take the champion down
            scratch.cleanup()
            logger.error("shadow model %s not loaded, serving without a shadow: %s", self.reference, error)
            return
        previous, self.loaded = self.loaded, _LoadedShadow(classifier, resolved.version, scratch)
        self.metrics.set_shadow(self.model_name, resolved.version, classifier.backend.name)
        logger.info("shadowing %s version %s on %.1f%% of requests", self.reference, resolved.version, self.percent)
        if previous is not None:
            previous.scratch.cleanup()

    def refresh(self) -> bool:
        """Load the version an alias points at now, if it moved; True when it did (called off the event loop)."""
        if "@" not in self.reference:
            return False
        try:
            version = registry_version(self.reference, self.tracking_uri)
        except Exception as error:  # the registry is away: keep shadowing what is loaded
            logger.warning("shadow alias %s not read: %s", self.reference, error)
            return False
        if version == self.version:
            return False
        self.load()
        return True

    async def _refresh_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await loop.run_in_executor(None, self.refresh)

    def hand_off(self, texts: list[str], answer: Answer, request_id: str) -> None:
        """The slot's hand-off of an answered request (its `on_answer`)."""
        champion = list(zip(answer.predictions.labels, answer.predictions.scores.tolist(), strict=True))
        self.offer(ShadowedRequest(request_id, texts, champion, answer.version, answer.seconds * 1000))

    def offer(self, request: ShadowedRequest) -> None:
        """Queue a request the champion answered (on the event loop); not shadowed when outside the share, when
        the shadow is not loaded, or when the queue is full."""
        if self.refresh_seconds > 0 and (self._refresher is None or self._refresher.done()):
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())
        if self.loaded is None or not shadowed(request.request_id, self.percent):
            return
        if self._queued_texts + len(request.texts) > self.queue_texts:
            self.metrics.shadow_skipped.labels("queue_full").inc(len(request.texts))
            return
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        self._queue.append(request)
        self._queued_texts += len(request.texts)
        self.metrics.shadow_queued.set(self._queued_texts)
        self._wakeup.set()

    def close(self) -> None:
        """Drop what waits (the server is stopping) and the loaded files."""
        for task in (self._worker, self._refresher):
            if task is not None:
                task.cancel()
        self._queue.clear()
        self._thread.shutdown(wait=False, cancel_futures=True)
        if self.loaded is not None:
            self.loaded.scratch.cleanup()
            self.loaded = None

    def _next_batch(self) -> list[ShadowedRequest]:
        batch, size = [], 0
        while self._queue and (not batch or size + len(self._queue[0].texts) <= self.max_batch_size):
            request = self._queue.popleft()
            batch.append(request)
            size += len(request.texts)
        self._queued_texts -= size
        self.metrics.shadow_queued.set(self._queued_texts)
        return batch

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._next_batch()
            loaded = self.loaded
            if loaded is None:
                continue
            texts = [text for request in batch for text in request.texts]
            started = time.perf_counter()
            try:
                predictions = await asyncio.wrap_future(self._thread.submit(loaded.classifier.predict, texts))
            except Exception as error:  # a failing shadow batch is logged and skipped; the champion is untouched
                self.metrics.shadow_skipped.labels("failed").inc(len(texts))
                logger.warning("shadow batch of %d texts failed: %r", len(texts), error)
                continue
            seconds = time.perf_counter() - started
            self.metrics.shadow_compute.observe(seconds)
            offset = 0
            for request in batch:
                count = len(request.texts)
                labels = predictions.labels[offset : offset + count]
                scores = predictions.scores[offset : offset + count]
                offset += count
                self._record(request, list(zip(labels, map(float, scores), strict=True)), loaded.version, seconds)

    def _record(self, request: ShadowedRequest, challenger: list[tuple[str, float]], version: str, seconds: float):
        agreed = sum(mine == theirs for (mine, _), (theirs, _) in zip(challenger, request.champion, strict=True))
        self.metrics.shadow_texts.labels("agree").inc(agreed)
        self.metrics.shadow_texts.labels("disagree").inc(len(challenger) - agreed)
        if self.request_logger is None:
            return
        body = orjson.dumps(
            {
                "champion_version": request.champion_version,
                "challenger_version": version,
                "champion": [{"label": label, "score": score} for label, score in request.champion],
                "challenger": [{"label": label, "score": score} for label, score in challenger],
                "champion_ms": round(request.champion_ms, 3),
                "challenger_ms": round(seconds * 1000, 3),
            }
        )
        self.request_logger.log(
            LoggedEvent(SHADOW_EVENT, request.request_id, body, "application/json", "shadow", request.champion_version)
        )
