"""Runs tritonclient's gRPC client against a server and prints what it saw as JSON.

A separate process because tritonclient and kserve both register the `inference.*` protobuf messages;
one Python process cannot import both, and the test process imports kserve.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

MODEL = "textclf"


def texts_tensor(items: list[bytes], name: str = "text", datatype: str = "BYTES") -> triton_grpc.InferInput:
    tensor = triton_grpc.InferInput(name, [len(items)], datatype)
    tensor.set_data_from_numpy(np.array(items, dtype=object))
    return tensor


def error_of(client: triton_grpc.InferenceServerClient, tensor: triton_grpc.InferInput) -> dict:
    try:
        client.infer(MODEL, [tensor])
    except InferenceServerException as error:
        return {"status": error.status(), "message": error.message()}
    return {"status": "OK", "message": ""}


def main(target: str, served_version: str) -> dict:
    client = triton_grpc.InferenceServerClient(url=target)

    def infer_version(version: str) -> dict:
        return outcome_of(lambda: client.infer(MODEL, [texts_tensor([b"Fine."])], model_version=version))

    metadata = client.get_model_metadata(MODEL, as_json=True)
    result = client.infer(MODEL, [texts_tensor([b"A lovely film.", b"Awful.", b"Fine."])], request_id="grpc-1")
    explained = client.infer(MODEL, [texts_tensor([b"A lovely film."])], parameters={"explain": True})
    numbers = triton_grpc.InferInput("text", [2], "FP32")
    numbers.set_data_from_numpy(np.array([1.0, 2.0], dtype=np.float32))
    return {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(MODEL),
        "inputs": metadata["inputs"],
        "outputs": [output["name"] for output in metadata["outputs"]],
        "labels": [label.decode() for label in result.as_numpy("label")],
        "scores": result.as_numpy("score").tolist(),
        "probabilities": result.as_numpy("probabilities").tolist(),
        "response_id": result.get_response().id,
        "explanation": json.loads(explained.as_numpy("explanation")[0]),
        "errors": {
            "empty text": error_of(client, texts_tensor([b"ok", b"   "])),
            "invalid UTF-8": error_of(client, texts_tensor([b"caf\xe9"])),
            "wrong datatype": error_of(client, numbers),
            "missing text input": error_of(client, texts_tensor([b"ok"], name="sentence")),
            "too many texts": error_of(client, texts_tensor([b"t"] * 9)),
            "message too large": error_of(client, texts_tensor([b"x" * 70_000])),
        },
        "versions": {"served": infer_version(served_version), "other": infer_version("not-" + served_version)},
        "after_errors": [
            label.decode() for label in client.infer(MODEL, [texts_tensor([b"Still up?"])]).as_numpy("label")
        ],
    }


def outcome_of(call) -> dict:
    try:
        call()
    except InferenceServerException as error:
        return {"status": error.status(), "message": error.message()}
    return {"status": "OK", "message": ""}


def administration(target: str) -> dict:
    """What an unload over gRPC and an inference get (the server's model-repository calls over gRPC)."""
    client = triton_grpc.InferenceServerClient(url=target)
    return {
        "unload": outcome_of(lambda: client.unload_model(MODEL)),
        "infer": outcome_of(lambda: client.infer(MODEL, [texts_tensor([b"Fine."])])),
    }


if __name__ == "__main__":
    target, argument = sys.argv[1:3]
    print(json.dumps(administration(target) if argument == "administration" else main(target, argument)))
