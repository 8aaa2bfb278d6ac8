"""The predictor: a `kserve.Model` over the core's `ModelSlot`, on KServe's own hooks: `preprocess` reads any
protocol's request (`serving/protocol.py`), `predict` and `explain` ask the slot, `postprocess` writes the answer in
the request's protocol. Loading, swapping, batching and explanation limits are the slot's."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kserve import InferRequest, InferResponse, Model

from textclf.serve.explain import Explanation
from textclf.serve.inputs import InputLimits
from textclf.serve.slot import Answer, ModelSlot, Unavailable
from textclf.serving.protocol import (
    TEXT_INPUT,
    ModelUnavailable,
    TextsRequest,
    check_version,
    explanations_answer,
    output_types,
    read_request,
    refused_as_invalid_input,
    request_id_of,
    unavailable_as_not_ready,
    v1_answer,
    v2_answer,
    v2_documents,
)
from textclf.serving.request_logger import RequestLogger
from textclf.serving.shadow import ShadowModel

logger = logging.getLogger(__name__)

GRPC_ENDPOINT = "grpc_model_infer"
"""The `ce-endpoint` of events logged for gRPC `ModelInfer` (HTTP routes are logged by the middleware)."""


@dataclass(frozen=True)
class Classified:
    """What `predict` hands `postprocess`."""

    request: TextsRequest
    answer: Answer
    request_id: str
    explanations: list[Explanation] | None


class TextClassifierModel(Model):
    def __init__(
        self,
        name: str,
        slot: ModelSlot,
        limits: InputLimits,
        shadow: ShadowModel | None = None,
        request_logger: RequestLogger | None = None,
    ):
        """`shadow` is reloaded after every load; `request_logger` gets the gRPC exchanges (HTTP ones pass the
        middleware, gRPC ones only this model)."""
        super().__init__(name)
        self.slot, self.limits, self.shadow, self.request_logger = slot, limits, shadow, request_logger

    @property
    def version(self) -> str:
        return self.slot.version

    def load(self) -> bool:
        """KServe's data plane calls this, on the event loop, for a request that finds the model not ready: after an
        `unload` that would block every request for a whole load, so it answers 503 instead (the repository's
        load calls `reload`)."""
        if self.slot.unloaded:
            raise ModelUnavailable(self.name, Unavailable.UNLOADED)
        return self.reload()

    def reload(self) -> bool:
        """Load the configured reference again (an alias may have moved) and swap it in; then the shadow."""
        self.slot.load()
        self.ready = True
        if self.shadow is not None:
            self.shadow.load()
        return self.ready

    def unload(self) -> None:
        """Stop serving: queued requests are still answered, later ones get a 503 until the repository's load."""
        self.slot.unload()
        self.ready = False
        logger.warning("model %s unloaded; requests get 503 until it is loaded again", self.name)

    def stop(self) -> None:
        """The server is shutting down."""
        self.slot.stop()
        if self.shadow is not None:
            self.shadow.close()

    def validate(self, payload: TextsRequest) -> TextsRequest:
        """`preprocess` already checked the request; KServe's own check reads v1/v2 dicts, not these."""
        return payload

    async def preprocess(self, payload: dict | bytes | InferRequest, headers: dict[str, str] | None = None) -> Any:
        if isinstance(payload, InferRequest):
            # KServe's gRPC servicer answers a ModelInfer for any version with the loaded one; REST requests
            # reach here with the version already checked by the middleware.
            check_version(self.name, payload.model_version, self.version)
        request = read_request(payload, self.limits)
        if request.explain:
            with refused_as_invalid_input():
                self.slot.settings.explanation_limits.check(request.texts)
        return request

    async def predict(self, payload: TextsRequest, headers: dict[str, str] | None = None) -> Classified:
        """The texts through the slot (503 when no version is served), with the explanations when asked."""
        request_id = request_id_of(payload, headers)
        explanations = None
        with unavailable_as_not_ready(self.name):
            answer = await self.slot.predict(payload.texts, request_id)
            if payload.explain:
                explanations, _version = await self.slot.explain(payload.texts)
        return Classified(payload, answer, request_id, explanations)

    async def explain(self, payload: TextsRequest, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """KServe's explain verb (`POST /v1/models/NAME:explain`): each text's predicted label with one attribution
        per word, by occlusion, as v1 `explanations`."""
        with unavailable_as_not_ready(self.name), refused_as_invalid_input():
            return explanations_answer(*await self.slot.explain(payload.texts), self.name)

    async def postprocess(
        self,
        result: Classified | dict,
        headers: dict[str, str] | None = None,
        response_headers: dict | None = None,
    ) -> dict | InferResponse:
        """The answer in the request's protocol: v2 or v1 `predictions` (`explain` answers in v1 already)."""
        if isinstance(result, dict):
            return result
        if result.request.protocol == "v1":
            return v1_answer(result.answer, self.name)
        response = v2_answer(result.request, result.answer, self.name, result.explanations)
        if result.request.from_grpc and self.request_logger is not None:
            exchange = v2_documents(result.request, response)
            self.request_logger.log_exchange(result.request_id, *exchange, GRPC_ENDPOINT, response.model_version)
        return response

    def get_input_types(self) -> list[dict]:
        return [{"name": TEXT_INPUT, "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict]:
        return output_types(self.slot.labels)
