"""One request of each protocol reaches the model's slot as the same typed request (the texts as a list of str, read
once), and each answer is written from the slot's columns without a per-text object in between: the server's app
in process, the fixture model, KServe's own gRPC decoding."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from kserve import InferRequest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from prometheus_client import CollectorRegistry

from tests.support.request_path import TEXTS, binary_body, requests
from textclf.config import ServingConfig
from textclf.serve.classifier import Predictions
from textclf.serving.prometheus import ServingMetrics
from textclf.serving.server import build_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def in_process(step_inputs: dict):
    config = ServingConfig(model=str(step_inputs["model"]), backend="torch", grpc_port=0)
    server, model = build_server(config, ServingMetrics.create(CollectorRegistry()))
    seen: list[tuple[object, Predictions]] = []
    predict = model.slot.predict

    async def recording(texts: list[str], request_id: str = ""):
        answer = await predict(texts, request_id)
        seen.append((texts, answer.predictions))
        return answer

    model.slot.predict = recording
    try:
        yield server.app, model, seen
    finally:
        model.stop()


def test_every_protocol_hands_the_slot_the_same_texts_and_answers_from_its_columns(in_process) -> None:
    app, model, seen = in_process
    body, header_length = binary_body(TEXTS)

    async def every_protocol() -> dict[str, httpx.Response | object]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = {protocol: await client.request(**request) for protocol, request in requests().items()}
        grpc_request = pb.ModelInferRequest(
            model_name="textclf",
            inputs=[pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[2])],
            raw_input_contents=[body[header_length:]],
        )
        answers["gRPC"], _headers = await model(InferRequest.from_grpc(grpc_request))
        return answers

    seen.clear()
    answers = asyncio.run(every_protocol())
    assert len(seen) == len(answers), "each request reaches the slot once"
    for texts, _predictions in seen:
        assert type(texts) is list and all(type(text) is str for text in texts) and texts == TEXTS
    reference = seen[0][1]
    for protocol, answer in answers.items():
        if protocol == "gRPC":
            outputs = {output.name: output.as_numpy() for output in answer.outputs}
            labels = [label.decode() if isinstance(label, bytes) else label for label in outputs["label"]]
            probabilities = outputs["probabilities"].reshape(len(TEXTS), -1)
        elif protocol.startswith("v2"):
            assert answer.status_code == 200, answer.text
            outputs = {output["name"]: output["data"] for output in answer.json()["outputs"]}
            labels, probabilities = outputs["label"], np.reshape(outputs["probabilities"], (len(TEXTS), -1))
        else:
            assert answer.status_code == 200, answer.text
            rows = answer.json()["predictions"]
            labels = [row["label"] for row in rows]
            probabilities = np.array([list(row["probabilities"].values()) for row in rows])
        assert labels == reference.labels, protocol
        np.testing.assert_allclose(probabilities, reference.probabilities, rtol=1e-6, err_msg=protocol)
