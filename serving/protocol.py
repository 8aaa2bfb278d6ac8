"""The predictor's protocols in one place: every request (v1, v2 JSON, v2 binary, gRPC, the simple API) is read
into one `TextsRequest`, and the slot's `Answer` (columns) is written back in the request's protocol. KServe
decodes the wire format (its `InferRequest` holds a v2 request however it came: JSON, binary tensors or gRPC);
this module checks what KServe does not and shapes the answers. Every message a client gets for a malformed
request is here or in `textclf.runtime.wire` (the binary-tensor reader the middleware and the monitor share)."""

from __future__ import annotations

import contextlib
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
from kserve import InferRequest, InferResponse
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady
from kserve.protocol.infer_type import InferInput, InferOutput, RequestedOutput, to_http_parameters

from textclf.runtime.wire import MALFORMED_BYTES
from textclf.serve.explain import Explanation
from textclf.serve.inputs import InputLimits, InvalidTexts, validate_texts
from textclf.serve.slot import Answer, SlotUnavailable, Unavailable

TEXT_INPUT = "text"
EXPLANATION_OUTPUT = "explanation"
"""v2 output when the request asks `"parameters": {"explain": true}`: one JSON document per text."""
OUTPUT_TYPES = (("label", "BYTES"), ("score", "FP32"), ("probabilities", "FP32"))


@dataclass(frozen=True)
class TextsRequest:
    """A request in any protocol, read and checked: what the model's hooks and the slot see."""

    texts: list[str]
    protocol: Literal["v1", "v2"]
    id: str = ""
    """A v2 request's id (its response carries it; gRPC exchanges are logged under it)."""
    explain: bool = False
    """v2 `"parameters": {"explain": true}`: the response also carries each text's explanation."""
    binary_outputs: bool = False
    requested_outputs: list[RequestedOutput] | None = None
    from_grpc: bool = False


UNAVAILABLE_DETAILS = {
    Unavailable.UNLOADED: "the model was unloaded: POST /v2/repository/models/{name}/load serves it again",
    Unavailable.STOPPING: "the model is shutting down: retry on another replica",
}


class ModelUnavailable(ModelNotReady):
    """KServe's ModelNotReady (503 over HTTP, UNAVAILABLE over gRPC) with the `reason` its gRPC interceptor
    reads: kserve 0.21.0's ModelNotReady sets only `error_msg`, so over gRPC it became UNKNOWN
    (kserve/protocol/grpc/interceptors.py `handle_exception`, kserve/errors.py)."""

    def __init__(self, model_name: str, why: Unavailable):
        super().__init__(model_name, UNAVAILABLE_DETAILS[why].format(name=model_name))
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


@contextlib.contextmanager
def refused_as_invalid_input() -> Iterator[None]:
    """The core's refusal of texts (`InvalidTexts`) as KServe's InvalidInput: 400 over HTTP, INVALID_ARGUMENT over
    gRPC, with the same message."""
    try:
        yield
    except InvalidTexts as error:
        raise InvalidInput(str(error)) from None


@contextlib.contextmanager
def unavailable_as_not_ready(model_name: str) -> Iterator[None]:
    """The slot's `SlotUnavailable` as `ModelUnavailable`: 503 over HTTP, UNAVAILABLE over gRPC."""
    try:
        yield
    except SlotUnavailable as unavailable:
        raise ModelUnavailable(model_name, unavailable.why) from None


def checked_texts(items: list[Any], limits: InputLimits) -> list[str]:
    with refused_as_invalid_input():
        return validate_texts(items, limits)


def read_request(payload: dict | bytes | InferRequest, limits: InputLimits) -> TextsRequest:
    """v2 (`text` BYTES [N]: JSON, binary or gRPC) or v1 (`{"instances": [...]}`)."""
    if isinstance(payload, InferRequest):
        return TextsRequest(
            checked_texts(_v2_items(payload), limits),
            "v2",
            id=payload.id or "",
            explain=_explanation_asked(payload),
            binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
            from_grpc=bool(payload.from_grpc),
        )
    if isinstance(payload, bytes):  # KServe passes a v1 body through undecoded when its content-type is not JSON
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise InvalidInput(f"the body is not valid JSON ({error}): send application/json") from None
    if not isinstance(payload, dict):
        raise InvalidInput('send a JSON object: {"instances": ["text", ...]} (v1) or a v2 inference request')
    instances = payload.get("instances")
    if not isinstance(instances, list):
        raise InvalidInput('send {"instances": ["text", ...]}: "instances" must be a list of texts')
    items = [item["text"] if isinstance(item, dict) and "text" in item else item for item in instances]
    return TextsRequest(checked_texts(items, limits), "v1")


def _v2_items(request: InferRequest) -> list[Any]:
    names = [tensor.name for tensor in request.inputs]
    if names != [TEXT_INPUT]:
        raise InvalidInput(f"expected exactly one input named {TEXT_INPUT!r} (datatype BYTES, shape [N]); got {names}")
    tensor: InferInput = request.inputs[0]
    if tensor.datatype != "BYTES":
        raise InvalidInput(f"input {TEXT_INPUT!r} must have datatype BYTES, not {tensor.datatype}")
    shape = list(tensor.shape)
    if len(shape) != 1 or shape[0] < 0:
        raise InvalidInput(f"input {TEXT_INPUT!r} must have shape [N] (one dimension), not {shape}")
    items = _tensor_items(tensor)
    if len(items) != shape[0]:
        raise InvalidInput(f"input {TEXT_INPUT!r} declares shape {shape} but carries {len(items)} items")
    return items


def _tensor_items(tensor: InferInput) -> list[Any]:
    """The tensor's items: its JSON `data` (KServe has already read binary HTTP tensors into it), or gRPC's raw
    contents read by KServe's own `as_numpy`, as one dimension so the caller compares the declared shape."""
    if tensor.data:
        if not isinstance(tensor.data, list):
            raise InvalidInput(f'input {TEXT_INPUT!r} needs "data": a list of strings')
        return tensor.data
    declared = tensor.shape
    tensor.shape = [-1]
    try:
        return list(tensor.as_numpy())
    except struct.error:
        raise InvalidInput(f"input {TEXT_INPUT!r}: {MALFORMED_BYTES}") from None
    finally:
        tensor.shape = declared


def _explanation_asked(request: InferRequest) -> bool:
    """v2 `"parameters": {"explain": true}` (a JSON boolean, or a gRPC bool parameter)."""
    parameters = to_http_parameters(request.parameters) if request.parameters else {}
    asked = parameters.get("explain", False)
    if not isinstance(asked, bool):
        raise InvalidInput(f"parameter 'explain' must be true or false, not {asked!r}")
    return asked


def prediction_rows(answer: Answer) -> list[dict[str, Any]]:
    """One object per text (v1 `predictions`, the simple API), read from the columns in one pass each."""
    predictions, labels = answer.predictions, answer.labels
    return [
        {"label": label, "score": score, "probabilities": dict(zip(labels, row, strict=True)), "truncated": cut}
        for label, score, row, cut in zip(
            predictions.labels,
            predictions.scores.tolist(),
            predictions.probabilities.tolist(),
            predictions.truncated.tolist(),
            strict=True,
        )
    ]


def v1_answer(answer: Answer, model_name: str) -> dict[str, Any]:
    return {"predictions": prediction_rows(answer), "model_name": model_name, "model_version": answer.version}


def explanations_answer(explanations: list[Explanation], model_version: str, model_name: str) -> dict[str, Any]:
    """KServe's explain verb: v1 `explanations`."""
    return {
        "explanations": [explanation.as_dict() for explanation in explanations],
        "model_name": model_name,
        "model_version": model_version,
    }


def output_types(labels: tuple[str, ...]) -> list[dict[str, Any]]:
    shapes = {"probabilities": [-1, len(labels)]}
    return [{"name": name, "datatype": datatype, "shape": shapes.get(name, [-1])} for name, datatype in OUTPUT_TYPES]


def v2_answer(
    request: TextsRequest, answer: Answer, model_name: str, explanations: list[Explanation] | None = None
) -> InferResponse:
    """A v2 response: `label`, `score` and `probabilities` (and `explanation` when asked), whether the texts were
    truncated in its parameters; binary outputs and the requested outputs as the request asked."""
    predictions = answer.predictions
    count = len(predictions.labels)
    outputs = [
        InferOutput("label", [count], "BYTES", list(predictions.labels)),
        InferOutput("score", [count], "FP32", predictions.scores.tolist()),
        InferOutput(
            "probabilities",
            [count, len(answer.labels)],
            "FP32",
            predictions.probabilities.astype(np.float32).ravel().tolist(),
        ),
    ]
    if explanations is not None:
        documents = [orjson.dumps(explanation.as_dict()).decode() for explanation in explanations]
        outputs.append(InferOutput(EXPLANATION_OUTPUT, [count], "BYTES", documents))
    truncated = predictions.truncated.nonzero()[0].tolist()
    return InferResponse(
        response_id=request.id or str(uuid.uuid4()),
        model_name=model_name,
        model_version=answer.version,
        infer_outputs=outputs,
        parameters={
            "truncated": bool(truncated),
            "truncated_indices": ",".join(map(str, truncated)),
            "max_length": answer.max_length,
        },
        use_binary_outputs=request.binary_outputs,
        requested_outputs=request.requested_outputs,
    )


def v2_documents(request: TextsRequest, response: InferResponse) -> tuple[bytes, bytes]:
    """A v2 exchange in v2's JSON form (how the request logger sends a gRPC `ModelInfer`)."""
    texts = request.texts
    request_document = {
        "id": request.id,
        "inputs": [{"name": TEXT_INPUT, "datatype": "BYTES", "shape": [len(texts)], "data": texts}],
    }
    response_document = {
        "id": response.id,
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": [
            {"name": output.name, "datatype": output.datatype, "shape": output.shape, "data": output.data}
            for output in response.outputs
        ],
    }
    return orjson.dumps(request_document), orjson.dumps(response_document)


def request_id_of(request: TextsRequest | None, headers: dict[str, str] | None) -> str:
    """The id the request's logged events carry: the HTTP middleware's `x-request-id` (it puts its own there when
    the client's is missing or unusable), else a v2 request's id (gRPC), else a new one."""
    for key, value in (headers or {}).items():
        if key.lower() == "x-request-id" and value:
            return value
    if request is not None and request.id:
        return request.id
    return str(uuid.uuid4())
