"""Dynamic micro-batching: concurrent requests share one forward pass.

Requests queue up while the model is busy; when it is free, the worker takes everything waiting (up to
`max_batch_size` texts), optionally waits `max_wait_ms` for more, and runs one batch. A lone request
therefore pays no batching delay, and under load batches fill by themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Result = TypeVar("Result")
_STOP = object()


class BatcherClosed(RuntimeError):
    """The batcher was closed (its model replaced); send the texts to the current one."""


@dataclass
class _Pending:
    texts: list[str]
    future: asyncio.Future
    enqueued_at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchStats:
    """What one forward pass did: the observability hooks record these."""

    texts: int
    requests: int
    queue_seconds: float
    compute_seconds: float


class MicroBatcher(Generic[Result]):
    """Runs `predict_batch(texts) -> per-text results` for many callers, one batch at a time, on one
    thread (torch already uses every CPU for one batch; two batches at once only contend). Pass `executor`
    to share that thread with other work on the same model, such as its loading and warm-up."""

    def __init__(
        self,
        predict_batch: Callable[[list[str]], Sequence[Result]],
        max_batch_size: int = 64,
        max_wait_ms: float = 0.0,
        on_batch: Callable[[BatchStats], None] | None = None,
        executor: ThreadPoolExecutor | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must not be negative")
        self._predict_batch = predict_batch
        self.max_batch_size = max_batch_size
        self.max_wait_seconds = max_wait_ms / 1000
        self._on_batch = on_batch
        self._queue: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task | None = None
        self._closed = False
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="textclf-batch")

    async def predict(self, texts: list[str]) -> list[Result]:
        """The results for `texts`, computed in whichever batch they land in."""
        if self._closed:
            raise BatcherClosed("this batcher was closed")
        if not texts:
            return []
        self._ensure_worker()
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(texts, future))
        return await future

    def close(self) -> None:
        """Stop taking requests; those already queued are still answered. Safe to call from any thread."""
        self._closed = True
        if self._worker is None or self._loop is None or self._loop.is_closed():
            self._release_executor()
            return
        self._loop.call_soon_threadsafe(self._queue.put_nowait, _STOP)

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue()
            self._worker = self._loop.create_task(self._run())

    async def _collect(self) -> tuple[list[_Pending], bool]:
        """The next batch, and whether the batcher was closed while collecting it."""
        first = await self._queue.get()
        if first is _STOP:
            return [], True
        batch, size = [first], len(first.texts)
        deadline = time.perf_counter() + self.max_wait_seconds
        while size < self.max_batch_size:
            if not self._queue.empty():
                pending = self._queue.get_nowait()
            else:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    pending = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if pending is _STOP:
                return batch, True
            batch.append(pending)
            size += len(pending.texts)
        return batch, False

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = await self._collect()
            await self._process(batch)
        self._release_executor()

    def _release_executor(self) -> None:
        if self._owns_executor:
            self._executor.shutdown(wait=False)

    async def _process(self, batch: list[_Pending]) -> None:
        live = [pending for pending in batch if not pending.future.done()]
        if not live:
            return
        texts = [text for pending in live for text in pending.texts]
        started = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, self._predict_batch, texts)
        except Exception as error:  # one bad batch fails its callers, never the worker
            for pending in live:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        finished = time.perf_counter()
        offset = 0
        for pending in live:
            count = len(pending.texts)
            if not pending.future.done():
                pending.future.set_result(list(results[offset : offset + count]))
            offset += count
        if self._on_batch is not None:
            self._on_batch(
                BatchStats(
                    texts=len(texts),
                    requests=len(live),
                    queue_seconds=max(started - pending.enqueued_at for pending in live),
                    compute_seconds=finished - started,
                )
            )
