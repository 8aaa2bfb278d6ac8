"""Dynamic micro-batching with fair sharing: concurrent requests share forward passes, and no request holds the
model for the others.

Each request's texts wait until the model is free. A batch is then formed from the waiting requests, the one that
has had the least compute so far first (least attained service): each gives its next texts until the batch holds
`max_batch_size` texts or its compute budget is spent, `target_batch_ms` of expected compute (estimated from the
batches so far, a text costing `cost_of(text)`: its length in tokens, say). A request of 256 long texts is computed
a slice at a time; a short request that arrives meanwhile goes first in the next batch, so it waits for the slice
being computed, however many long requests are waiting; long requests take turns. A lone short request pays no
batching delay, and under load batches fill by themselves. A request whose caller went away (its awaiting task was
cancelled: the client disconnected) gives no more texts.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, Protocol, Self, TypeVar


class Sliceable(Protocol):
    """A batch's results, one entry (or row) per text: a list, or columns such as the core's `Predictions`."""

    def __len__(self) -> int: ...

    def __getitem__(self, rows: slice) -> Self: ...


Results = TypeVar("Results", bound=Sliceable)
CHARS_PER_TOKEN = 4.0
"""English averages about four characters a token in BERT's vocabularies: enough to compare texts' costs."""
RATE_SMOOTHING = 0.3
"""Weight of the latest batch in the estimate of compute seconds per unit of cost."""


class BatcherClosed(RuntimeError):
    """The batcher was closed (its model replaced); send the texts to the current one."""


def token_cost(max_tokens: int) -> Callable[[str], float]:
    """A text's cost as the tokens a model of `max_tokens` positions computes for it (estimated from its length;
    longer texts are cut), plus its special tokens."""
    return lambda text: min(len(text) / CHARS_PER_TOKEN, max_tokens) + 2


@dataclass(eq=False)
class _Pending:
    texts: list[str]
    costs: list[float]
    future: asyncio.Future
    enqueued_at: float = field(default_factory=time.perf_counter)
    handed_out: int = 0
    """Texts given to batches so far (in order: a request's slices are computed in order)."""
    attained: float = 0.0
    """The cost of those texts: the compute this request has had."""
    parts: list = field(default_factory=list)
    """The results of each of its slices computed so far, in order."""
    answered: int = 0

    @property
    def has_more(self) -> bool:
        return self.handed_out < len(self.texts) and not self.future.done()


@dataclass(frozen=True)
class _Slice:
    pending: _Pending
    start: int
    end: int

    @property
    def texts(self) -> list[str]:
        return self.pending.texts[self.start : self.end]

    @property
    def cost(self) -> float:
        return sum(self.pending.costs[self.start : self.end])


@dataclass(frozen=True)
class BatchStats:
    """What one forward pass did: the observability hooks record these."""

    texts: int
    requests: int
    queue_seconds: float
    compute_seconds: float


def concatenated(parts: list[list]) -> list:
    return [result for part in parts for result in part]


class MicroBatcher(Generic[Results]):
    """Runs `predict_batch(texts) -> results` (one entry or row per text, sliceable) for many callers, one batch
    at a time, on one thread (torch already uses every CPU for one batch; two batches at once only contend). A
    caller gets its rows of the batch, as computed (a slice), or `join` of its slices' rows when its texts took
    several batches. Pass `executor` to share the model's thread with other work on the same model, such as its
    loading and warm-up."""

    def __init__(
        self,
        predict_batch: Callable[[list[str]], Results],
        max_batch_size: int = 64,
        max_wait_ms: float = 0.0,
        on_batch: Callable[[BatchStats], None] | None = None,
        executor: ThreadPoolExecutor | None = None,
        target_batch_ms: float = math.inf,
        cost_of: Callable[[str], float] = lambda text: 1.0,
        join: Callable[[list[Results]], Results] = concatenated,
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must not be negative")
        if not target_batch_ms > 0:
            raise ValueError("target_batch_ms must be positive")
        self._predict_batch = predict_batch
        self.max_batch_size = max_batch_size
        self.max_wait_seconds = max_wait_ms / 1000
        self.target_batch_seconds = target_batch_ms / 1000
        self._cost_of = cost_of
        self._join = join
        self._on_batch = on_batch
        self._waiting: list[_Pending] = []
        self._seconds_per_cost: float | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task | None = None
        self._closed = False
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="textclf-batch")

    async def predict(self, texts: list[str]) -> Results:
        """The results for `texts` (at least one), computed in as many batches as fair sharing takes."""
        if self._closed:
            raise BatcherClosed("this batcher was closed")
        if not texts:
            raise ValueError("no texts to predict")
        self._ensure_worker()
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(_Pending(list(texts), [self._cost_of(text) for text in texts], future))
        self._wakeup.set()
        return await future

    def close(self) -> None:
        """Stop taking requests; those already queued are still answered. Safe to call from any thread."""
        self._closed = True
        if self._worker is None or self._loop is None or self._loop.is_closed():
            self._release_executor()
            return
        self._loop.call_soon_threadsafe(self._wakeup.set)

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._loop = asyncio.get_running_loop()
            self._wakeup = asyncio.Event()
            self._worker = self._loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                if self._closed:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._gather_more()
            batch = self._next_batch()
            if batch:
                await self._process(batch)
        self._release_executor()

    async def _gather_more(self) -> None:
        """With `max_wait_ms`, wait that long for more requests while the waiting texts would not fill a batch."""
        deadline = time.perf_counter() + self.max_wait_seconds
        while not self._closed and self._waiting_texts() < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _waiting_texts(self) -> int:
        return sum(len(pending.texts) - pending.handed_out for pending in self._waiting if pending.has_more)

    def _cost_budget(self) -> float:
        """The cost one batch may have: `target_batch_ms` of compute at the measured rate. Before any batch is
        measured, nothing: the first batch holds one text, and its time is the first measurement."""
        if math.isinf(self.target_batch_seconds):
            return math.inf
        if self._seconds_per_cost is None:
            return 0.0
        return self.target_batch_seconds / self._seconds_per_cost

    def _next_batch(self) -> list[_Slice]:
        """Slices of the waiting requests, least attained compute first, up to `max_batch_size` texts and the cost
        budget (a batch always holds at least one text)."""
        self._waiting = [pending for pending in self._waiting if pending.has_more]
        batch: list[_Slice] = []
        room, budget = self.max_batch_size, self._cost_budget()
        for pending in sorted(self._waiting, key=lambda pending: (pending.attained, pending.enqueued_at)):
            start = end = pending.handed_out
            while end < len(pending.texts) and room > 0:
                first_of_batch = not batch and end == start
                if pending.costs[end] > budget and not first_of_batch:
                    break
                budget -= pending.costs[end]
                room -= 1
                end += 1
            if end == start:
                break
            pending.handed_out = end
            pending.attained += sum(pending.costs[start:end])
            batch.append(_Slice(pending, start, end))
        return batch

    def _release_executor(self) -> None:
        if self._owns_executor:
            self._executor.shutdown(wait=False)

    async def _process(self, batch: list[_Slice]) -> None:
        live = [piece for piece in batch if not piece.pending.future.done()]
        if not live:
            return
        texts = [text for piece in live for text in piece.texts]
        started = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, self._predict_batch, texts)
        except Exception as error:  # one bad batch fails its callers, never the worker
            for piece in live:
                if not piece.pending.future.done():
                    piece.pending.future.set_exception(error)
            return
        finished = time.perf_counter()
        self._measured(sum(piece.cost for piece in live), finished - started)
        offset = 0
        for piece in live:
            count = piece.end - piece.start
            pending = piece.pending
            if not pending.future.done():
                # A batch of one request's texts is its answer as computed: no copy of its rows.
                whole = offset == 0 and count == len(texts)
                pending.parts.append(results if whole else results[offset : offset + count])
                pending.answered += count
                if pending.answered == len(pending.texts):
                    parts = pending.parts
                    pending.future.set_result(parts[0] if len(parts) == 1 else self._join(parts))
            offset += count
        if self._on_batch is not None:
            self._on_batch(
                BatchStats(
                    texts=len(texts),
                    requests=len({id(piece.pending) for piece in live}),
                    queue_seconds=max(started - piece.pending.enqueued_at for piece in live),
                    compute_seconds=finished - started,
                )
            )

    def _measured(self, cost: float, seconds: float) -> None:
        if cost <= 0:
            return
        observed = seconds / cost
        previous = self._seconds_per_cost
        self._seconds_per_cost = observed if previous is None else previous + RATE_SMOOTHING * (observed - previous)
