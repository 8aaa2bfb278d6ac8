"""The served model's slot: the version answering now, and everything that keeps it answering. It loads and warms
up a version, swaps it in atomically (the version served keeps answering until the new one is ready), retires the
one it replaces once its queued texts are answered, unloads on request, and sends every text through the
version's micro-batcher on one inference thread. Free of any server: the KServe predictor (`textclf.serving`) is
a thin adapter over it, and any other front end can be.

A request is answered by exactly one version: its texts go to the batcher of the version read when they are
queued, and a version swapped out between reading and queueing sends them to the new one.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from textclf.registry.model_uri import resolve_model
from textclf.runtime.cpu import release_free_memory, settle_long_lived_objects
from textclf.serve.backends import AUTO_BACKEND, TIMING_BATCH_SIZES
from textclf.serve.batching import BatcherClosed, BatchStats, MicroBatcher, token_cost
from textclf.serve.classifier import Predictions, TextClassifier, load_fastest
from textclf.serve.explain import Explanation, ExplanationBatch, ExplanationLimits

logger = logging.getLogger(__name__)

# Measured: trimming every 10 batches held a server's memory flat under varied batch shapes (it crept up
# ~50 MiB per 150 batches without), at no measurable cost in throughput.
BATCHES_PER_MEMORY_TRIM = 10
WARMUP_TEXTS = ("warm-up text for the first forward pass", "a second, somewhat longer warm-up text " * 8)


class Unavailable(Enum):
    """Why no version answers: the front end turns each into its own "retry later" answer."""

    UNLOADED = "unloaded"
    STOPPING = "stopping"


class SlotUnavailable(RuntimeError):
    def __init__(self, why: Unavailable):
        super().__init__(why.value)
        self.why = why


@dataclass(frozen=True)
class SlotSettings:
    """What the slot loads and how it batches; `ServingConfig` holds the defaults."""

    reference: str
    """models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model, or a model directory."""
    tracking_uri: str
    reported_version: str
    """The version to report for a model directory (a registry version it holds); empty: the one resolved."""
    backend: str
    torch_threads: int
    max_batch_size: int
    max_wait_ms: float
    target_batch_ms: float
    explanation_limits: ExplanationLimits


@dataclass
class ServedVersion:
    """One loaded version: swapped as a whole when the champion changes, so a request sees one version."""

    classifier: TextClassifier
    version: str
    batcher: MicroBatcher[Predictions]
    scratch: tempfile.TemporaryDirectory
    max_length: int
    """The most tokens of a text it reads (its metadata's prediction length), read once."""


@dataclass(frozen=True)
class Answer:
    """The predictions for one request's texts, in columns, and the version that computed them."""

    predictions: Predictions
    version: str
    labels: tuple[str, ...]
    """The class names, in the order of the probabilities' columns."""
    max_length: int
    """The most tokens of a text the version reads (longer texts are truncated)."""
    seconds: float


class ModelSlot:
    def __init__(
        self,
        settings: SlotSettings,
        on_batch: Callable[[BatchStats], None] | None = None,
        on_swap: Callable[[ServedVersion], None] | None = None,
        on_answer: Sequence[Callable[[list[str], Answer, str], None]] = (),
    ):
        """`on_batch` sees every forward pass, `on_swap` every version swapped in, and each of `on_answer` every
        answered request's texts, answer and request id (the shadow hand-off, say)."""
        self.settings = settings
        self.on_batch = on_batch
        self.on_swap = on_swap
        self.on_answer = on_answer
        self.served: ServedVersion | None = None
        self.unloaded = False
        """Set by `unload`: requests are refused until `load`."""
        self._load_lock = threading.Lock()
        # Every torch call (loading, warm-up, every batch, every version) runs on this one thread: each thread that
        # calls torch gets its own OpenMP team, and once teams outnumber the CPUs OpenMP stops spinning between
        # parallel regions, which doubled the latency of a forward pass here.
        self._inference_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="textclf-inference")
        self._batches_since_trim = 0
        # One explanation at a time: each is many forward passes, and two at once would only take turns on the
        # inference thread while holding back ordinary batches longer.
        self._explaining = asyncio.Semaphore(1)

    @property
    def version(self) -> str:
        served = self.served
        return served.version if served else ""

    @property
    def labels(self) -> tuple[str, ...]:
        served = self.served
        return served.classifier.labels if served else ()

    def load(self) -> ServedVersion:
        """Resolve the reference now (an alias may have moved), load and warm it up, then swap it in; the version
        being served keeps answering until then, and a failed load leaves it in place. Clears `unloaded`. Once the
        new version is in, the heap is settled (`settle_long_lived_objects`): a reload pays one full garbage
        collection so that serving pays none of that size."""
        settings = self.settings
        with self._load_lock:
            # Downloads and any ONNX export a directory lacks go here, never into the directory being served.
            scratch = tempfile.TemporaryDirectory(prefix="textclf-model-")
            downloads = settings.reference.startswith(("models:/", "runs:/"))
            try:
                resolved = resolve_model(
                    settings.reference, settings.tracking_uri, Path(scratch.name) if downloads else None
                )
                classifier = self._inference_thread.submit(
                    self._load_and_warm_up, resolved.directory, Path(scratch.name) / "onnx-export"
                ).result()
            except Exception:
                scratch.cleanup()
                raise
            batcher = MicroBatcher(
                lambda texts, classifier=classifier: self._predict_batch(classifier, texts),
                settings.max_batch_size,
                settings.max_wait_ms,
                on_batch=self.on_batch,
                executor=self._inference_thread,
                target_batch_ms=settings.target_batch_ms,
                cost_of=token_cost(classifier.metadata.prediction_length),
                join=Predictions.join,
            )
            version = settings.reported_version or resolved.version
            served = ServedVersion(classifier, version, batcher, scratch, classifier.metadata.prediction_length)
            previous, self.served, self.unloaded = self.served, served, False
            logger.info("serving version %s from %s on %s", served.version, settings.reference, classifier.backend.name)
        if self.on_swap is not None:
            self.on_swap(served)
        self._retire(previous)
        settle_long_lived_objects()
        return served

    def unload(self) -> None:
        """Stop serving: queued texts are still answered, later ones refused until `load`. The inference thread
        stays, so a `load` can follow."""
        with self._load_lock:
            previous, self.served = self.served, None
            self.unloaded = True
        self._retire(previous)

    def stop(self) -> None:
        """The server is shutting down."""
        if self.served is not None:
            self.served.batcher.close()
        self._inference_thread.shutdown(wait=False)

    @staticmethod
    def _retire(previous: ServedVersion | None) -> None:
        """A version no longer served: its queued texts are answered, then its files go."""
        if previous is not None:
            previous.batcher.close()
            previous.scratch.cleanup()

    def _load_and_warm_up(self, directory: Path, export_to: Path) -> TextClassifier:
        settings = self.settings
        if settings.backend == AUTO_BACKEND:
            selection = load_fastest(directory, settings.torch_threads, export_to)
            classifier = selection.classifier
            if not selection.timings:
                logger.info("backend auto: only %s is eligible, loaded without timing", classifier.backend.name)
            else:
                logger.info(
                    "backend auto chose %s among %s (ms per text at batch sizes %s: %s)",
                    classifier.backend.name,
                    selection.eligible,
                    TIMING_BATCH_SIZES,
                    {
                        timing.backend: [round(s * 1000, 2) for s in timing.seconds_per_text.values()]
                        for timing in selection.timings
                    },
                )
        else:
            classifier = TextClassifier.load(directory, settings.torch_threads, settings.backend, export_to)
        for size in (1, min(8, settings.max_batch_size)):
            classifier.predict(list(WARMUP_TEXTS) * size)
        return classifier

    def _predict_batch(self, classifier: TextClassifier, texts: list[str]) -> Predictions:
        predictions = classifier.predict(texts)
        self._batches_since_trim += 1
        if self._batches_since_trim >= BATCHES_PER_MEMORY_TRIM:
            release_free_memory()
            self._batches_since_trim = 0
        return predictions

    async def predict(self, texts: list[str], request_id: str = "") -> Answer:
        """The texts' predictions from the version served now; `SlotUnavailable` when none is. `on_answer` then
        sees them under `request_id`."""
        started = time.perf_counter()
        predictions, served = await self._classified(texts)
        answer = Answer(
            predictions, served.version, served.classifier.labels, served.max_length, time.perf_counter() - started
        )
        for hand_off in self.on_answer:
            hand_off(texts, answer, request_id)
        return answer

    async def explain(self, texts: list[str]) -> tuple[list[Explanation], str]:
        """Each text's predicted label with one attribution per word, by occlusion, and the version that computed
        them; `InvalidTexts` when the texts are over the explanation limits. The variants go through the
        micro-batcher like any request, so they take their turn with other requests' texts instead of holding the
        model; one explanation runs at a time."""
        self.settings.explanation_limits.check(texts)
        async with self._explaining:
            batch = ExplanationBatch.for_texts(texts)
            predictions, served = await self._classified(batch.texts)
        return batch.finish(predictions.probabilities, served.classifier.labels), served.version

    async def _classified(self, texts: list[str]) -> tuple[Predictions, ServedVersion]:
        while True:
            served = self.served
            if served is None:
                raise SlotUnavailable(Unavailable.UNLOADED)
            try:
                return await served.batcher.predict(texts), served
            except BatcherClosed:
                if self.served is served:
                    raise SlotUnavailable(Unavailable.STOPPING) from None
                # The version was swapped between reading it and queueing: send the texts to the new one.
