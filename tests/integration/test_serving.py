"""The real `textclf serve` process, spoken to over HTTP: v2 through tritonclient (an independent client of
the Open Inference Protocol), v1, the simple API, metadata, metrics, request logging and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from tests.support.events import bytes_tensor
from textclf.monitor.events import parse_event, prediction_records

pytestmark = pytest.mark.integration

MODEL = "textclf"
TEXTS = ["A warm, funny and beautifully acted film.", "Dull, long and badly written.", "It was fine."]


@pytest.fixture(scope="module")
def labels(serving_server) -> list[str]:
    return httpx.get(f"{serving_server.url}/health").json()["labels"]


@pytest.fixture(scope="module")
def triton(serving_server) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(url=serving_server.url.removeprefix("http://"))


def reference_answers(serving_server) -> list[dict]:
    response = httpx.post(f"{serving_server.url}/predict_batch", json={"texts": TEXTS})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def v2_infer(serving_server, inputs: list[dict], **extra) -> httpx.Response:
    return httpx.post(f"{serving_server.url}/v2/models/{MODEL}/infer", json={"inputs": inputs, **extra})


def text_tensor(data: list, shape: list[int] | None = None, datatype: str = "BYTES", name: str = "text") -> dict:
    return {"name": name, "datatype": datatype, "shape": shape if shape is not None else [len(data)], "data": data}


def test_health_metadata_and_readiness_through_tritonclient(triton, labels: list[str]) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready(MODEL)
    metadata = triton.get_model_metadata(MODEL)
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [output["name"] for output in metadata["outputs"]] == ["label", "score", "probabilities"]
    assert metadata["outputs"][2]["shape"] == [-1, len(labels)]
    assert metadata["parameters"]["labels"] == labels
    assert metadata["versions"][0].startswith("sha256-")


@pytest.mark.parametrize("binary", [True, False], ids=["binary-tensors", "json-tensors"])
def test_v2_rest_answers_match_the_simple_api(serving_server, triton, labels: list[str], binary: bool) -> None:
    tensor = triton_http.InferInput("text", [len(TEXTS)], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode() for text in TEXTS], dtype=object), binary_data=binary)
    outputs = [
        triton_http.InferRequestedOutput(name, binary_data=binary) for name in ("label", "score", "probabilities")
    ]
    result = triton.infer(MODEL, [tensor], outputs=outputs, request_id="req-1")

    predicted = [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("label")]
    scores = result.as_numpy("score")
    probabilities = result.as_numpy("probabilities")
    assert set(predicted) <= set(labels)
    assert probabilities.shape == (len(TEXTS), len(labels))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(scores, probabilities.max(axis=1), atol=1e-6)
    assert [labels[i] for i in probabilities.argmax(axis=1)] == predicted
    response = result.get_response()
    assert response["id"] == "req-1"
    assert response["parameters"]["truncated"] is False

    reference = reference_answers(serving_server)
    assert predicted == [item["label"] for item in reference]
    np.testing.assert_allclose(scores, [item["score"] for item in reference], atol=1e-4)


def test_v1_and_simple_api(serving_server, labels: list[str]) -> None:
    reference = reference_answers(serving_server)
    v1 = httpx.post(
        f"{serving_server.url}/v1/models/{MODEL}:predict", json={"instances": [TEXTS[0], {"text": TEXTS[1]}]}
    )
    assert v1.status_code == 200, v1.text
    predictions = v1.json()["predictions"]
    assert [p["label"] for p in predictions] == [r["label"] for r in reference[:2]]
    assert set(predictions[0]["probabilities"]) == set(labels)

    single = httpx.post(f"{serving_server.url}/predict", json={"text": TEXTS[2]})
    assert single.status_code == 200
    assert single.json()["label"] == reference[2]["label"]
    assert single.json()["score"] == pytest.approx(reference[2]["score"], abs=1e-4)
    assert httpx.get(f"{serving_server.url}/v1/models/{MODEL}").json()["ready"] is True


def test_openapi_documents_the_simple_api(serving_server) -> None:
    schema = httpx.get(f"{serving_server.url}/openapi.json").json()
    assert {"/predict", "/predict_batch", "/health"} <= set(schema["paths"])
    assert "PredictBatchRequest" in schema["components"]["schemas"]
    docs = httpx.get(f"{serving_server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_long_texts_are_truncated_and_the_response_says_so(serving_server) -> None:
    long_text = "an endlessly long review " * 400
    response = v2_infer(serving_server, [text_tensor(["short one", long_text])])
    assert response.status_code == 200, response.text
    assert response.json()["parameters"]["truncated"] is True
    assert response.json()["parameters"]["truncated_indices"] == "1"
    simple = httpx.post(f"{serving_server.url}/predict", json={"text": long_text})
    assert simple.json()["truncated"] is True


BAD_V2_REQUESTS = {
    "wrong datatype": ([text_tensor([1.0, 2.0], datatype="FP32")], "datatype BYTES"),
    "two-dimensional shape": ([text_tensor(["a", "b"], shape=[2, 1])], "shape [N]"),
    "shape disagrees with data": ([text_tensor(["a", "b"], shape=[3])], "carries 2 items"),
    "missing text input": ([text_tensor(["a"], name="sentence")], "named 'text'"),
    "extra input": ([text_tensor(["a"]), text_tensor(["b"], name="other")], "exactly one input"),
    "empty text": ([text_tensor(["fine", ""])], "text 1 is empty"),
    "whitespace-only text": ([text_tensor(["  \n\t "])], "text 0 is empty"),
    "non-string items": ([text_tensor(["ok", 7])], "text 1 is int"),
    "nested items": ([text_tensor([["a"], ["b"]])], "not a string"),
    "too many texts": ([text_tensor([f"text {i}" for i in range(9)])], "at most 8"),
    "no texts": ([text_tensor([])], "at least one text"),
    "too long a text": ([text_tensor(["x" * 20_001])], "limit is 20000"),
}


@pytest.mark.parametrize("case", BAD_V2_REQUESTS, ids=list(BAD_V2_REQUESTS))
def test_bad_v2_requests_get_400_with_what_to_fix(serving_server, case: str) -> None:
    inputs, message = BAD_V2_REQUESTS[case]
    response = v2_infer(serving_server, inputs)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_bad_requests_on_every_endpoint_get_4xx(serving_server) -> None:
    url = serving_server.url
    json_header = {"content-type": "application/json"}
    cases = [
        # Refused before KServe reads it, as the monitor would refuse the logged event (textclf.runtime.wire).
        ("malformed JSON, v2", f"/v2/models/{MODEL}/infer", b'{"inputs": [', json_header, 400, "not JSON"),
        ("malformed JSON, v1", f"/v1/models/{MODEL}:predict", b'{"instances": [', json_header, 400, "not JSON"),
        ("malformed JSON, /predict", "/predict", b'{"text": ', json_header, 400, "not JSON"),
        ("NaN, v1", f"/v1/models/{MODEL}:predict", b'{"instances": ["a"], "x": NaN}', json_header, 400, "not JSON"),
        ("v1 without instances", f"/v1/models/{MODEL}:predict", b'{"texts": ["a"]}', json_header, 400, "instances"),
        ("invalid UTF-8, /predict", "/predict", b'{"text": "caf\xe9"}', json_header, 400, "UTF-8"),
        ("invalid UTF-8, v1", f"/v1/models/{MODEL}:predict", b'{"instances": ["caf\xe9"]}', json_header, 400, "UTF-8"),
        (
            "invalid UTF-8, v2",
            f"/v2/models/{MODEL}/infer",
            b'{"inputs": [{"data": ["caf\xe9"]}]}',
            json_header,
            400,
            "UTF-8",
        ),
        ("number as text, /predict", "/predict", b'{"text": 5}', json_header, 422, ""),
        ("empty text, /predict", "/predict", b'{"text": " "}', json_header, 400, "empty"),
        ("too many, /predict_batch", "/predict_batch", json.dumps({"texts": ["a"] * 9}).encode(), json_header, 400, ""),
        ("unknown model", "/v2/models/nope/infer", json.dumps({"inputs": []}).encode(), json_header, 404, ""),
        ("body too large", "/predict", json.dumps({"text": "x" * 70_000}).encode(), json_header, 413, "larger"),
    ]
    for name, path, body, headers, status, message in cases:
        response = httpx.post(f"{url}{path}", content=body, headers=headers)
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        assert message in response.text, name

    # A chunked body has no content-length: the limit is enforced while reading it.
    def chunks():
        for _ in range(20):
            yield b"x" * 4096

    response = httpx.post(f"{url}/predict", content=chunks(), headers=json_header)
    assert response.status_code == 413


def test_invalid_utf8_in_a_binary_v2_tensor_is_a_400(serving_server) -> None:
    raw = bytes_tensor([b"fine", b"caf\xe9"])
    header = json.dumps(
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(raw)}}]}
    ).encode()
    response = httpx.post(
        f"{serving_server.url}/v2/models/{MODEL}/infer",
        content=header + raw,
        headers={"inference-header-content-length": str(len(header)), "content-type": "application/octet-stream"},
    )
    assert response.status_code == 400, response.text
    assert "not valid UTF-8" in response.json()["error"]


def test_tritonclient_sees_bad_input_as_an_error_not_a_crash(triton) -> None:
    tensor = triton_http.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"   "], dtype=object))
    with pytest.raises(InferenceServerException, match="empty"):
        triton.infer(MODEL, [tensor])
    assert triton.is_server_live()


def test_metrics_expose_requests_latency_batches_errors_and_model_version(serving_server) -> None:
    httpx.post(f"{serving_server.url}/predict_batch", json={"texts": TEXTS})
    httpx.post(f"{serving_server.url}/predict", json={"text": ""})
    metrics = httpx.get(f"{serving_server.url}/metrics").text
    version = httpx.get(f"{serving_server.url}/health").json()["model_version"]
    assert 'textclf_requests_total{code="200",route="predict_batch"}' in metrics
    assert 'textclf_request_latency_seconds_bucket{le="0.01",route="predict_batch"}' in metrics
    assert 'textclf_errors_total{kind="invalid_input"}' in metrics
    assert "textclf_batch_size_bucket" in metrics
    assert f'model_version="{version}"' in metrics
    batches = [line for line in metrics.splitlines() if line.startswith("textclf_batch_size_count")]
    assert batches and float(batches[0].split()[-1]) >= 1


def test_responses_carry_a_request_id_and_the_access_log_is_json(serving_server) -> None:
    response = httpx.post(f"{serving_server.url}/predict", json={"text": "ok"}, headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    access = serving_server.json_log_records(
        lambda record: record.get("logger") == "textclf.access" and record.get("request_id") == "abc-123"
    )
    assert access and access[0]["status"] == 200 and access[0]["route"] == "predict"


def test_inference_traffic_reaches_the_request_logger_as_cloudevents(serving_server, event_sink) -> None:
    request_id = f"logged-request-{uuid.uuid4()}"  # the sink outlives each backend's server
    response = httpx.post(
        f"{serving_server.url}/v2/models/{MODEL}/infer",
        json={"inputs": [text_tensor(["log me please"])]},
        headers={"x-request-id": request_id},
    )
    assert response.status_code == 200
    mine = event_sink.events_with_id(request_id, 2)
    assert sorted(event["headers"]["ce-type"] for event in mine) == [
        "org.kubeflow.serving.inference.request",
        "org.kubeflow.serving.inference.response",
    ]
    request_event = next(e for e in mine if e["headers"]["ce-type"].endswith("request"))
    response_event = next(e for e in mine if e["headers"]["ce-type"].endswith("response"))
    assert json.loads(request_event["body"])["inputs"][0]["data"] == ["log me please"]
    assert json.loads(response_event["body"])["outputs"][0]["name"] == "label"
    assert request_event["headers"]["ce-specversion"] == "1.0"
    assert request_event["headers"]["ce-inferenceservicename"] == MODEL
    assert response_event["headers"]["ce-modelversion"].startswith("sha256-")

    # What the monitor will store: the pair read back as one prediction record (the "prediction record" contract).
    [record] = prediction_records(
        parse_event(request_event["headers"], request_event["body"]),
        parse_event(response_event["headers"], response_event["body"]),
    )
    answer = response.json()
    assert (record.request_id, record.text) == (request_id, "log me please")
    assert record.predicted_label == answer["outputs"][0]["data"][0]
    assert record.score == pytest.approx(answer["outputs"][1]["data"][0])
    assert record.model_version == answer["model_version"] and record.model_name == MODEL
    assert sum(record.probabilities) == pytest.approx(1.0, abs=1e-5)


def test_v2_grpc_through_tritonclient(serving_server, labels: list[str]) -> None:
    version = httpx.get(f"{serving_server.url}/v2/models/{MODEL}").json()["versions"][0]
    probe = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("grpc_probe.py")), serving_server.grpc_target, version],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert seen["live"] and seen["ready"] and seen["model_ready"]
    assert seen["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": ["-1"]}]
    assert seen["outputs"] == ["label", "score", "probabilities"]
    assert seen["response_id"] == "grpc-1"
    assert [word["word"] for word in seen["explanation"]["words"]] == ["A", "lovely", "film."]
    reference = httpx.post(f"{serving_server.url}/predict_batch", json={"texts": ["A lovely film.", "Awful.", "Fine."]})
    assert seen["labels"] == [item["label"] for item in reference.json()["predictions"]]
    np.testing.assert_allclose(np.array(seen["probabilities"]).sum(axis=1), 1.0, atol=1e-5)
    expected = {
        "empty text": "empty",
        "invalid UTF-8": "UTF-8",
        "wrong datatype": "BYTES",
        "missing text input": "'text'",
        "too many texts": "at most 8",
    }
    for case, fragment in expected.items():
        assert seen["errors"][case]["status"] == "StatusCode.INVALID_ARGUMENT", (case, seen["errors"][case])
        assert fragment in seen["errors"][case]["message"], (case, seen["errors"][case])
    # The body limit holds for gRPC too: gRPC itself refuses the message.
    assert seen["errors"]["message too large"]["status"] == "StatusCode.RESOURCE_EXHAUSTED"
    assert set(seen["after_errors"]) <= set(labels)
    # A ModelInfer names a version: the one served answers, any other is not found (not answered by the served one).
    assert seen["versions"]["served"]["status"] == "OK"
    assert seen["versions"]["other"]["status"] == "StatusCode.NOT_FOUND"
    assert f"it serves version '{version}'" in seen["versions"]["other"]["message"]


def assert_explains(explanation: dict, text: str, labels: list[str]) -> None:
    """One attribution per whitespace-separated word, at the word's offsets in the text as sent."""
    assert explanation["label"] in labels and 0 < explanation["score"] <= 1
    assert [word["word"] for word in explanation["words"]] == text.split()
    for word in explanation["words"]:
        assert text[word["start"] : word["end"]] == word["word"]
        assert -1 <= word["attribution"] <= 1
    assert explanation["method"] == "occlusion"


def test_the_explain_verb_attributes_every_word_of_every_text(serving_server, labels: list[str]) -> None:
    response = httpx.post(f"{serving_server.url}/v1/models/{MODEL}:explain", json={"instances": TEXTS}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == MODEL and body["model_version"]
    reference = reference_answers(serving_server)
    for explanation, text, answer in zip(body["explanations"], TEXTS, reference, strict=True):
        assert_explains(explanation, text, labels)
        assert explanation["label"] == answer["label"]
        assert explanation["score"] == pytest.approx(answer["score"], abs=1e-3)


def test_v2_infer_with_the_explain_parameter_adds_an_explanation_output(serving_server, labels: list[str]) -> None:
    response = v2_infer(serving_server, [text_tensor(TEXTS)], parameters={"explain": True})
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert outputs["explanation"]["datatype"] == "BYTES" and outputs["explanation"]["shape"] == [len(TEXTS)]
    for document, text, label in zip(outputs["explanation"]["data"], TEXTS, outputs["label"]["data"], strict=True):
        explanation = json.loads(document)
        assert_explains(explanation, text, labels)
        assert explanation["label"] == label
    plain = v2_infer(serving_server, [text_tensor(TEXTS)])
    assert "explanation" not in {output["name"] for output in plain.json()["outputs"]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"instances": ["a text"] * 4 + ["one too many"]}, "explain at most 4 texts"),
        ({"instances": ["x" * 5_001]}, "characters; explanations take at most 5000"),
        ({"instances": ["a " * 301]}, "301 words; explanations take at most 300"),
        ({"instances": ["a " * 260] * 4}, "1040 words; one explanation request takes at most 1000"),
        ({"instances": [""]}, "empty"),
        ({"texts": ["wrong key"]}, "instances"),
    ],
)
def test_bad_explain_requests_get_400_with_what_to_fix(serving_server, body: dict, fragment: str) -> None:
    response = httpx.post(f"{serving_server.url}/v1/models/{MODEL}:explain", json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert fragment in response.text
    assert httpx.get(f"{serving_server.url}/v2/health/ready").status_code == 200


def test_a_bad_explain_parameter_gets_400(serving_server) -> None:
    response = v2_infer(serving_server, [text_tensor(["ok"])], parameters={"explain": "yes"})
    assert response.status_code == 400 and "'explain' must be true or false" in response.text
    too_long = v2_infer(serving_server, [text_tensor(["word " * 400])], parameters={"explain": True})
    assert too_long.status_code == 400 and "explanations take at most 300" in too_long.text


def test_predictions_do_not_wait_for_a_running_explanation(serving_server) -> None:
    """A large explanation (3 texts of 300 words: 903 forward-pass texts) runs while a client keeps asking for
    ordinary predictions: its variants take turns with them in the micro-batcher, so each waits for at most a slice
    of it, never the whole."""
    import threading

    long_texts = [" ".join(f"word{index}" for index in range(300))] * 3
    finished: dict[str, float] = {}

    def explain_all() -> None:
        started = time.perf_counter()
        response = httpx.post(
            f"{serving_server.url}/v1/models/{MODEL}:explain", json={"instances": long_texts}, timeout=300
        )
        assert response.status_code == 200, response.text
        finished["seconds"] = time.perf_counter() - started

    worker = threading.Thread(target=explain_all)
    worker.start()
    time.sleep(0.2)
    waits = []
    with httpx.Client(base_url=serving_server.url, timeout=60) as client:
        while worker.is_alive() and len(waits) < 20:
            started = time.perf_counter()
            assert client.post("/predict", json={"text": "A lovely film."}).status_code == 200
            waits.append(time.perf_counter() - started)
    worker.join()
    assert waits, "the explanation finished before any prediction was sent"
    assert max(waits) < finished["seconds"] / 3, (waits, finished)


def test_the_versioned_v2_routes_answer_for_the_served_version_and_404_for_any_other(
    serving_server, triton, labels: list[str]
) -> None:
    version = httpx.get(f"{serving_server.url}/v2/models/{MODEL}").json()["versions"][0]
    assert triton.is_model_ready(MODEL, model_version=version)
    metadata = triton.get_model_metadata(MODEL, model_version=version)
    assert metadata["versions"] == [version] and metadata["parameters"]["labels"] == labels
    tensor = triton_http.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"A lovely film."], dtype=object))
    result = triton.infer(MODEL, [tensor], model_version=version)
    assert result.as_numpy("label")[0].decode() in labels
    assert result.get_response()["model_version"] == version

    base = f"{serving_server.url}/v2/models/{MODEL}/versions/not-{version}"
    for response in (
        httpx.get(base),
        httpx.get(f"{base}/ready"),
        httpx.post(f"{base}/infer", json={"inputs": [text_tensor(["ok"])]}),
    ):
        assert response.status_code == 404, response.text
        assert f"it serves version '{version}'" in response.json()["error"]
    assert not triton.is_model_ready(MODEL, model_version="not-" + version)
    unknown = httpx.post(
        f"{serving_server.url}/v2/models/elsewhere/versions/{version}/infer", json={"inputs": [text_tensor(["ok"])]}
    )
    assert unknown.status_code == 404

    # The same through the query (`?model_version=`), which KServe answers with 501 on its own.
    v2 = f"{serving_server.url}/v2/models/{MODEL}"
    body = {"inputs": [text_tensor(["A lovely film."])]}
    served = {"model_version": version}
    assert httpx.get(v2, params=served).json()["versions"] == [version]
    assert httpx.get(f"{v2}/ready", params=served).json() == {"name": MODEL, "ready": True}
    answered = httpx.post(f"{v2}/infer", params=served, json=body)
    assert answered.status_code == 200 and answered.json()["model_version"] == version
    for response in (
        httpx.get(v2, params={"model_version": "999"}),
        httpx.get(f"{v2}/ready", params={"model_version": "999"}),
        httpx.post(f"{v2}/infer", params={"model_version": "999"}, json=body),
        httpx.post(f"{v2}/versions/{version}/infer", params={"model_version": "999"}, json=body),
    ):
        assert response.status_code == 404, response.text
        assert f"it serves version '{version}'" in response.json()["error"]
    elsewhere = f"{serving_server.url}/v2/models/elsewhere"
    for response in (
        httpx.get(f"{elsewhere}/ready", params=served),
        httpx.post(f"{elsewhere}/infer", params=served, json=body),
    ):
        assert response.status_code == 404, response.text
