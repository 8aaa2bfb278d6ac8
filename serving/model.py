"""The predictor: a `kserve.Model` whose logic is the core's `TextClassifier`, on KServe's own hooks:
`preprocess` turns any protocol's request into validated texts, `predict` runs them through the micro-batcher,
`postprocess` shapes the v1 or v2 response. KServe owns the protocols' routes and decoding."""

from __future__ import annotations

import asyncio
import logging
import struct
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
from kserve import InferRequest, InferResponse, Model
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady
from kserve.protocol.infer_type import InferInput, InferOutput, to_http_parameters

from textclf.config import ServingConfig
from textclf.monitor.events import REQUEST_EVENT, RESPONSE_EVENT
from textclf.registry.model_uri import resolve_model
from textclf.registry.tracking import default_tracking_uri
from textclf.runtime.cpu import release_free_memory, settle_long_lived_objects
from textclf.serve.backends import AUTO_BACKEND, TIMING_BATCH_SIZES
from textclf.serve.batching import BatcherClosed, MicroBatcher, token_cost
from textclf.serve.classifier import TextClassifier, load_fastest
from textclf.serve.explain import Explanation, ExplanationBatch, word_spans
from textclf.serve.inputs import InputLimits, InvalidTexts, validate_texts
from textclf.serving.prometheus import ServingMetrics
from textclf.serving.request_logger import LoggedEvent, RequestLogger
from textclf.serving.shadow import ShadowedRequest, ShadowModel

logger = logging.getLogger(__name__)

TEXT_INPUT = "text"
EXPLANATION_OUTPUT = "explanation"
"""v2 output when the request asks `"parameters": {"explain": true}`: one JSON document per text."""
# Measured: trimming every 10 batches held a server's memory flat under varied batch shapes (it crept up
# ~50 MiB per 150 batches without), at no measurable cost in throughput.
BATCHES_PER_MEMORY_TRIM = 10
UNLOADED_DETAIL = "the model was unloaded: POST /v2/repository/models/{name}/load serves it again"
GRPC_ENDPOINT = "grpc_model_infer"
"""The `ce-endpoint` of events logged for gRPC `ModelInfer` (HTTP routes are logged by the middleware)."""
WARMUP_TEXTS = ("warm-up text for the first forward pass", "a second, somewhat longer warm-up text " * 8)


class ModelUnavailable(ModelNotReady):
    """KServe's ModelNotReady (503 over HTTP, UNAVAILABLE over gRPC) with the `reason` its gRPC interceptor
    reads: kserve 0.21.0's ModelNotReady sets only `error_msg`, so over gRPC it became UNKNOWN
    (kserve/protocol/grpc/interceptors.py `handle_exception`, kserve/errors.py)."""

    def __init__(self, model_name: str, detail: str):
        super().__init__(model_name, detail)
        self.reason = self.error_msg


class VersionNotServed(ModelNotFound):
    """A request for a version of the model other than the one served: 404 over HTTP, NOT_FOUND over gRPC
    (KServe's ModelNotFound), with a reason that names the version served."""

    def __init__(self, model_name: str, asked: str, served: str):
        super().__init__(model_name)
        self.reason = (
            f"model {model_name} has no version {asked!r} on this server: it serves version {served!r} "
            f"(GET /v2/models/{model_name} lists it); or leave the version out"
        )


def check_version(model_name: str, asked: str | None, served: str) -> None:
    """Raise VersionNotServed unless `asked` is empty or the version served (or none is loaded yet, when KServe's
    own answer, not ready, is the one to give)."""
    if asked and served and asked != served:
        raise VersionNotServed(model_name, asked, served)


@dataclass(frozen=True)
class TextPrediction:
    label: str
    score: float
    probabilities: np.ndarray
    truncated: bool


@dataclass(frozen=True)
class TextsRequest:
    """What `preprocess` hands `predict`: the validated texts, the protocol to answer in and, for v2, the
    request (its id, binary-output choice and requested outputs shape the response)."""

    texts: list[str]
    protocol: Literal["v1", "v2"]
    infer_request: InferRequest | None = None
    explain: bool = False
    """v2 `"parameters": {"explain": true}`: the response also carries each text's explanation."""


@dataclass(frozen=True)
class Classified:
    predictions: list[TextPrediction]
    model_version: str
    """The version that computed these predictions (a reload may swap versions between requests)."""
    request: TextsRequest
    explanations: list[Explanation] | None = None


@dataclass(frozen=True)
class Explained:
    """What `explain` hands `postprocess` (KServe's explain verb)."""

    explanations: list[Explanation]
    model_version: str
    request: TextsRequest


@dataclass
class LoadedModel:
    """One loaded version: swapped as a whole when the champion changes, so a request sees one version."""

    classifier: TextClassifier
    version: str
    batcher: MicroBatcher[TextPrediction]
    scratch: tempfile.TemporaryDirectory


class TextClassifierModel(Model):
    def __init__(self, name: str, config: ServingConfig, metrics: ServingMetrics):
        super().__init__(name)
        self.config = config
        self.metrics = metrics
        self.limits = InputLimits(max_texts=config.max_texts_per_request, max_text_chars=config.max_text_chars)
        self.loaded: LoadedModel | None = None
        self._load_lock = threading.Lock()
        # Every torch call (loading, warm-up, every batch, every version) runs on this one thread: each
        # thread that calls torch gets its own OpenMP team, and once teams outnumber the CPUs OpenMP stops
        # spinning between parallel regions, which doubled the latency of a forward pass here.
        self._inference_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="textclf-inference")
        self._batches_since_trim = 0
        # One explanation at a time: each is many forward passes, and two at once would only take turns on the
        # inference thread while holding back ordinary batches longer.
        self._explaining = asyncio.Semaphore(1)
        self.unloaded = False
        """Set by the repository's `unload`: requests get a 503 until its `load`, which clears it."""
        self.shadow: ShadowModel | None = None
        """A second model shown a share of the requests (`shadow_model`); `load` reloads it after the champion."""
        self.request_logger: RequestLogger | None = None
        """Where gRPC exchanges are logged (`request_logger_url`): HTTP ones pass the middleware, gRPC ones only
        this model."""

    @property
    def labels(self) -> tuple[str, ...]:
        return self.loaded.classifier.labels if self.loaded else ()

    @property
    def version(self) -> str:
        return self.loaded.version if self.loaded else ""

    def load(self) -> bool:
        """Resolve the configured reference now (an alias may have moved), load and warm it up, then swap it in.

        The version being served keeps answering until the new one is ready; a failed load leaves it in place.
        KServe's data plane also calls this, on the event loop, for a request that finds the model not ready:
        after an `unload` that would block every request for a whole load, so it answers 503 instead. Once the new
        version is in, the heap is settled (`settle_long_lived_objects`): a reload pays one full garbage collection
        so that serving pays none of that size."""
        if self.unloaded:
            raise ModelUnavailable(self.name, UNLOADED_DETAIL.format(name=self.name))
        with self._load_lock:
            reference = self.config.model
            tracking_uri = self.config.tracking_uri or default_tracking_uri()
            # Downloads and any ONNX export a directory lacks go here, never into the directory being served.
            scratch = tempfile.TemporaryDirectory(prefix="textclf-model-")
            downloads = reference.startswith(("models:/", "runs:/"))
            try:
                resolved = resolve_model(reference, tracking_uri, Path(scratch.name) if downloads else None)
                classifier = self._inference_thread.submit(
                    self._load_and_warm_up, resolved.directory, Path(scratch.name) / "onnx-export"
                ).result()
            except Exception:
                scratch.cleanup()
                raise
            batcher = MicroBatcher(
                lambda texts, classifier=classifier: self._predict_batch(classifier, texts),
                self.config.max_batch_size,
                self.config.max_wait_ms,
                on_batch=self.metrics.record_batch,
                executor=self._inference_thread,
                target_batch_ms=self.config.target_batch_ms,
                cost_of=token_cost(classifier.metadata.prediction_length),
            )
            # A directory has no registry version; where the deployer knows it (KServe's /mnt/models holds a
            # registered version), it is named so the monitor finds that version's reference.
            version = self.config.model_version or resolved.version
            previous, self.loaded = self.loaded, LoadedModel(classifier, version, batcher, scratch)
            self.metrics.set_model(self.name, version, classifier.metadata.base_model, classifier.backend.name)
            self.ready = True
            logger.info("serving %s version %s from %s on %s", self.name, version, reference, classifier.backend.name)
        self._retire(previous)
        if self.shadow is not None:
            self.shadow.load()
        settle_long_lived_objects()
        return self.ready

    def unload(self) -> None:
        """Stop serving: queued requests are still answered, later ones get a 503 until `load`. The inference
        thread stays, so a `load` can follow."""
        with self._load_lock:
            previous, self.loaded = self.loaded, None
            self.ready = False
            self.unloaded = True
        self._retire(previous)
        logger.warning("model %s unloaded; requests get 503 until it is loaded again", self.name)

    @staticmethod
    def _retire(previous: LoadedModel | None) -> None:
        """A version no longer served: its queued requests are answered, then its files go."""
        if previous is not None:
            previous.batcher.close()
            previous.scratch.cleanup()

    def stop(self) -> None:
        """The server is shutting down (KServe calls this on SIGTERM)."""
        if self.loaded is not None:
            self.loaded.batcher.close()
        if self.shadow is not None:
            self.shadow.close()
        self._inference_thread.shutdown(wait=False)

    def _load_and_warm_up(self, directory: Path, export_to: Path) -> TextClassifier:
        if self.config.backend == AUTO_BACKEND:
            selection = load_fastest(directory, self.config.torch_threads, export_to)
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
            classifier = TextClassifier.load(directory, self.config.torch_threads, self.config.backend, export_to)
        for size in (1, min(8, self.config.max_batch_size)):
            classifier.predict(list(WARMUP_TEXTS) * size)
        return classifier

    def _predict_batch(self, classifier: TextClassifier, texts: list[str]) -> list[TextPrediction]:
        predictions = classifier.predict(texts)
        self._batches_since_trim += 1
        if self._batches_since_trim >= BATCHES_PER_MEMORY_TRIM:
            release_free_memory()
            self._batches_since_trim = 0
        return [
            TextPrediction(label, float(score), row, bool(cut))
            for label, score, row, cut in zip(
                predictions.labels,
                predictions.scores,
                predictions.probabilities,
                predictions.truncated,
                strict=True,
            )
        ]

    def validate(self, payload: TextsRequest) -> TextsRequest:
        """`preprocess` already validated the texts; KServe's own check reads v1/v2 dicts, not these."""
        return payload

    async def preprocess(self, payload: dict | bytes | InferRequest, headers: dict[str, str] | None = None) -> Any:
        """Any protocol's request as validated texts: v2 (`text` BYTES [N], JSON, binary or gRPC) or v1
        (`{"instances": [...]}`, which the simple API also sends); `InvalidInput` (400) says what to fix."""
        if isinstance(payload, InferRequest):
            # KServe's gRPC servicer answers a ModelInfer for any version with the loaded one; REST requests
            # reach here with the version already checked by the middleware.
            check_version(self.name, payload.model_version, self.version)
            items, protocol = self._v2_items(payload), "v2"
        else:
            if isinstance(payload, bytes):
                payload = self._json_object(payload)
            if not isinstance(payload, dict):
                raise InvalidInput('send a JSON object: {"instances": ["text", ...]} (v1) or a v2 inference request')
            items, protocol = self._v1_items(payload), "v1"
        try:
            texts = validate_texts(items, self.limits)
        except InvalidTexts as error:
            raise InvalidInput(str(error)) from None
        if not isinstance(payload, InferRequest):
            return TextsRequest(texts, protocol)
        explain = self._explanation_asked(payload)
        if explain:
            self._check_explain_limits(texts)
        return TextsRequest(texts, protocol, payload, explain=explain)

    async def predict(self, payload: TextsRequest, headers: dict[str, str] | None = None) -> Classified:
        """The texts through the micro-batcher of the version loaded now; 503 when none is. Once answered, the
        texts are offered to the shadow model, if any, under the request's id."""
        started = time.perf_counter()
        results, loaded = await self._classified(payload.texts)
        self.metrics.truncated.inc(sum(result.truncated for result in results))
        if self.shadow is not None:
            self.shadow.offer(
                ShadowedRequest(
                    request_id=self._request_id(payload, headers),
                    texts=payload.texts,
                    champion=[(result.label, result.score) for result in results],
                    champion_version=loaded.version,
                    champion_ms=(time.perf_counter() - started) * 1000,
                )
            )
        explanations = (await self.explain(payload)).explanations if payload.explain else None
        return Classified(results, loaded.version, payload, explanations)

    async def _classified(self, texts: list[str]) -> tuple[list[TextPrediction], LoadedModel]:
        """The texts through the micro-batcher of the version loaded now, and that version; 503 when none is."""
        while True:
            loaded = self.loaded
            if loaded is None:
                raise ModelUnavailable(self.name, UNLOADED_DETAIL.format(name=self.name))
            try:
                return await loaded.batcher.predict(texts), loaded
            except BatcherClosed:
                if self.loaded is loaded:
                    raise ModelUnavailable(self.name, "the model is shutting down: retry on another replica") from None
                # The version was swapped between reading it and queueing: send the texts to the new one.

    @staticmethod
    def _request_id(payload: TextsRequest, headers: dict[str, str] | None) -> str:
        """The id the request's logged events carry: the HTTP middleware's `x-request-id` (it puts its own there
        when the client's is missing or unusable), else a v2 request's id (gRPC), else a new one."""
        presented = {key.lower(): value for key, value in (headers or {}).items()}.get("x-request-id")
        if presented:
            return presented
        if payload.infer_request is not None and payload.infer_request.id:
            return payload.infer_request.id
        return str(uuid.uuid4())

    async def explain(self, payload: TextsRequest, headers: dict[str, str] | None = None) -> Explained:
        """KServe's explain verb (`POST /v1/models/NAME:explain`) and v2's `explain` parameter: each text's
        predicted label with one attribution per word, by occlusion. The variants go through the micro-batcher like
        any request, so they take their turn with other requests' texts (fair sharing) instead of holding the
        model; one explanation runs at a time."""
        self._check_explain_limits(payload.texts)
        async with self._explaining:
            batch = ExplanationBatch.for_texts(payload.texts)
            results, loaded = await self._classified(batch.texts)
        explanations = batch.finish(np.stack([result.probabilities for result in results]), loaded.classifier.labels)
        return Explained(explanations, loaded.version, payload)

    def _check_explain_limits(self, texts: list[str]) -> None:
        config = self.config
        if len(texts) > config.max_explain_texts:
            raise InvalidInput(
                f"explain at most {config.max_explain_texts} texts per request (got {len(texts)}): send fewer"
            )
        total_words = 0
        for index, text in enumerate(texts):
            if len(text) > config.max_explain_chars:
                raise InvalidInput(
                    f"text {index} has {len(text)} characters; explanations take at most {config.max_explain_chars}: "
                    "send a shorter text, or ask for a prediction without an explanation"
                )
            words = len(word_spans(text))
            if words > config.max_explain_words:
                raise InvalidInput(
                    f"text {index} has {words} words; explanations take at most {config.max_explain_words}: "
                    "send a shorter text, or ask for a prediction without an explanation"
                )
            total_words += words
        if total_words > config.max_explain_request_words:
            raise InvalidInput(
                f"the texts have {total_words} words; one explanation request takes at most "
                f"{config.max_explain_request_words} (each word is a forward pass): send fewer or shorter texts"
            )

    @staticmethod
    def _explanation_asked(request: InferRequest) -> bool:
        """v2 `"parameters": {"explain": true}` (a JSON boolean, or a gRPC bool parameter)."""
        parameters = to_http_parameters(request.parameters) if request.parameters else {}
        asked = parameters.get("explain", False)
        if not isinstance(asked, bool):
            raise InvalidInput(f"parameter 'explain' must be true or false, not {asked!r}")
        return asked

    async def postprocess(
        self,
        result: Classified | Explained,
        headers: dict[str, str] | None = None,
        response_headers: dict | None = None,
    ) -> dict | InferResponse:
        """The response in the request's protocol: a v2 `InferResponse`, or v1 `predictions` (the simple API's
        shape too); for the explain verb, v1 `explanations`."""
        if isinstance(result, Explained):
            return {
                "explanations": [explanation.as_dict() for explanation in result.explanations],
                "model_name": self.name,
                "model_version": result.model_version,
            }
        if result.request.protocol == "v2":
            response = self._v2_response(result, result.request.infer_request)
            if result.request.infer_request.from_grpc and self.request_logger is not None:
                self._log_grpc_exchange(result, response, headers)
            return response
        return {
            "predictions": [self.as_json(prediction) for prediction in result.predictions],
            "model_name": self.name,
            "model_version": result.model_version,
        }

    def _log_grpc_exchange(self, classified: Classified, response: InferResponse, headers: dict | None) -> None:
        """A gRPC `ModelInfer` as the request logger sends an HTTP v2 exchange: its request and response in v2's
        JSON form, under the request's id."""
        request = classified.request
        texts = request.texts
        request_document = {
            "id": request.infer_request.id,
            "inputs": [{"name": TEXT_INPUT, "datatype": "BYTES", "shape": [len(texts)], "data": texts}],
        }
        response_document = {
            "id": response.id,
            "model_name": self.name,
            "model_version": classified.model_version,
            "outputs": [
                {"name": output.name, "datatype": output.datatype, "shape": output.shape, "data": output.data}
                for output in response.outputs
            ],
        }
        request_id = self._request_id(request, headers)
        for event_type, document in ((REQUEST_EVENT, request_document), (RESPONSE_EVENT, response_document)):
            self.request_logger.log(
                LoggedEvent(
                    event_type,
                    request_id,
                    orjson.dumps(document),
                    "application/json",
                    GRPC_ENDPOINT,
                    classified.model_version,
                )
            )

    def get_input_types(self) -> list[dict]:
        return [{"name": TEXT_INPUT, "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict]:
        return [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "score", "datatype": "FP32", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(self.labels)]},
        ]

    @staticmethod
    def _json_object(body: bytes) -> Any:
        """KServe passes a v1 body through undecoded when its content-type is not JSON; decode it anyway."""
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise InvalidInput(f"the body is not valid JSON ({error}): send application/json") from None

    @staticmethod
    def _v1_items(payload: dict) -> list[Any]:
        instances = payload.get("instances")
        if not isinstance(instances, list):
            raise InvalidInput('send {"instances": ["text", ...]}: "instances" must be a list of texts')
        return [item["text"] if isinstance(item, dict) and "text" in item else item for item in instances]

    def as_json(self, result: TextPrediction) -> dict:
        return {
            "label": result.label,
            "score": result.score,
            "probabilities": dict(zip(self.labels, result.probabilities.tolist(), strict=True)),
            "truncated": result.truncated,
        }

    def _v2_response(self, classified: Classified, request: InferRequest) -> InferResponse:
        results = classified.predictions
        count = len(results)
        truncated = [index for index, result in enumerate(results) if result.truncated]
        outputs = [
            InferOutput("label", [count], "BYTES", [result.label for result in results]),
            InferOutput("score", [count], "FP32", [result.score for result in results]),
            InferOutput(
                "probabilities",
                [count, len(self.labels)],
                "FP32",
                np.stack([result.probabilities for result in results]).astype(np.float32).ravel().tolist(),
            ),
        ]
        if classified.explanations is not None:
            outputs.append(
                InferOutput(
                    EXPLANATION_OUTPUT,
                    [count],
                    "BYTES",
                    [orjson.dumps(explanation.as_dict()).decode() for explanation in classified.explanations],
                )
            )
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=classified.model_version,
            infer_outputs=outputs,
            parameters={
                "truncated": bool(truncated),
                "truncated_indices": ",".join(map(str, truncated)),
                "max_length": self.loaded.classifier.metadata.prediction_length,
            },
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )

    def _v2_items(self, request: InferRequest) -> list[Any]:
        names = [tensor.name for tensor in request.inputs]
        if names != [TEXT_INPUT]:
            raise InvalidInput(
                f"expected exactly one input named {TEXT_INPUT!r} (datatype BYTES, shape [N]); got {names}"
            )
        tensor: InferInput = request.inputs[0]
        if tensor.datatype != "BYTES":
            raise InvalidInput(f"input {TEXT_INPUT!r} must have datatype BYTES, not {tensor.datatype}")
        shape = list(tensor.shape)
        if len(shape) != 1 or shape[0] < 0:
            raise InvalidInput(f"input {TEXT_INPUT!r} must have shape [N] (one dimension), not {shape}")
        items = self._tensor_items(tensor)
        if len(items) != shape[0]:
            raise InvalidInput(f"input {TEXT_INPUT!r} declares shape {shape} but carries {len(items)} items")
        return items

    @staticmethod
    def _tensor_items(tensor: InferInput) -> list[Any]:
        """The tensor's items: its JSON `data`, or its binary data (HTTP binary tensors, gRPC raw contents)
        decoded by KServe's own `as_numpy`, read as one dimension so the caller compares the declared shape."""
        if not tensor.data:  # None for binary HTTP tensors, empty for gRPC raw contents
            declared = tensor.shape
            tensor.shape = [-1]
            try:
                return list(tensor.as_numpy())
            except struct.error:
                raise InvalidInput(
                    f"input {TEXT_INPUT!r}: raw BYTES data is malformed (each item is a 4-byte length, then its bytes)"
                ) from None
            finally:
                tensor.shape = declared
        if not isinstance(tensor.data, list):
            raise InvalidInput(f'input {TEXT_INPUT!r} needs "data": a list of strings')
        return tensor.data
