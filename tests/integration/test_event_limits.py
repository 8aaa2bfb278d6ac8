"""One JSON reading at both ends (textclf.runtime.wire), with real processes: what the predictor answers, the
monitor stores; what it cannot read, the predictor refuses first; the monitor answers any hostile event with a
4xx naming what is wrong, never a 5xx its senders would retry; and a normal prediction is stored at once after
each (the issue-33 probes: a request nested 1,000 deep stopped all later monitoring)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.events import binary_cloud_event, bytes_tensor, v2_exchange
from tests.support.servers import RunningMonitor, RunningServer, monitor_server, textclf_server
from textclf.monitor.events import REQUEST_EVENT, RESPONSE_EVENT
from textclf.runtime.wire import MAX_JSON_DEPTH, bytes_items

pytestmark = pytest.mark.integration

TOKEN = "event-limits-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
STORED_WITHIN_SECONDS = 1.0
FUZZ_EXAMPLES = 300


def nested(levels: int) -> str:
    """JSON arrays `levels` deep (Python's own json cannot write 1,000 levels)."""
    return "[" * levels + "]" * levels


def with_extra(levels: int, first: str = '"instances": ["fine"]') -> bytes:
    return f'{{{first}, "extra": {nested(levels)}}}'.encode()


def predictions_stored(client: httpx.Client) -> float:
    lines = client.get("/metrics").text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("textclf_monitor_predictions_total"))


def stored_at_once(client: httpx.Client, event_id: str) -> float:
    """Send one normal exchange; seconds until the monitor counts its prediction."""
    before = predictions_stored(client)
    started = time.monotonic()
    request, response = v2_exchange(["still monitored"], ["positive"])
    for kind, payload in (("request", request), ("response", response)):
        headers, body = binary_cloud_event(event_id, kind, payload)
        assert client.post("/events", headers={**headers, **AUTH}, content=body).status_code == 200
    while predictions_stored(client) < before + 1:
        assert time.monotonic() - started < 10, "the normal prediction was not stored"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def monitor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("monitor")


@pytest.fixture(scope="module")
def monitor(monitor_dir: Path) -> Iterator[RunningMonitor]:
    with monitor_server(monitor_dir, "--check-interval", "0", "--set", f"write_token={TOKEN}") as m:
        yield m


@pytest.fixture(scope="module")
def logging_server(
    tmp_path_factory: pytest.TempPathFactory, step_inputs: dict, monitor: RunningMonitor
) -> Iterator[RunningServer]:
    with textclf_server(
        tmp_path_factory.mktemp("serve"),
        "--model",
        str(step_inputs["model"]),
        "--backend",
        "onnx",
        "--request-logger-url",
        f"{monitor.url}/events",
        env={"TEXTCLF_SERVE_REQUEST_LOGGER_TOKEN": TOKEN},
    ) as server:
        yield server


def test_the_predictor_refuses_what_the_monitor_could_not_store_and_monitoring_goes_on(
    logging_server: RunningServer, monitor: RunningMonitor
) -> None:
    with httpx.Client(timeout=60) as client, httpx.Client(base_url=monitor.url, timeout=30) as monitor_client:
        before = predictions_stored(monitor_client)
        v1 = f"{logging_server.url}/v1/models/textclf:predict"
        json_type = {"content-type": "application/json"}
        too_deep = client.post(v1, content=with_extra(1000), headers=json_type)
        assert too_deep.status_code == 400 and f"nested more than {MAX_JSON_DEPTH} levels" in too_deep.text
        assert client.post(v1, content=with_extra(MAX_JSON_DEPTH - 1), headers=json_type).status_code == 200
        assert client.post(f"{logging_server.url}/predict", json={"text": "and then"}).status_code == 200
        deadline = time.monotonic() + 20
        while predictions_stored(monitor_client) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert predictions_stored(monitor_client) == before + 2


HOSTILE_EVENTS = {
    "deep nesting": (REQUEST_EVENT, {}, with_extra(1000), 400),
    "time as a number": (
        REQUEST_EVENT,
        {"content-type": "application/cloudevents+json"},
        json.dumps({"specversion": "1.0", "id": "t", "type": REQUEST_EVENT, "source": "s", "time": 12345,
                    "inferenceservicename": "textclf", "data": {"text": "x"}}).encode(),
        400,
    ),
    "lone surrogate id": (
        REQUEST_EVENT,
        {"content-type": "application/cloudevents+json"},
        b'{"specversion": "1.0", "id": "\\udc80", "type": "%s", "source": "s", "inferenceservicename": "textclf",'
        b' "data": {"text": "x"}}' % REQUEST_EVENT.encode(),
        400,
    ),
    "time without a UTC value": (REQUEST_EVENT, {"ce-time": "0001-01-01T00:00:00+14:00"}, b'{"text": "x"}', 400),
    "NaN score": (RESPONSE_EVENT, {}, b'{"label": "positive", "score": NaN}', 400),
    "NaN as a string": (RESPONSE_EVENT, {}, b'{"label": "positive", "score": "NaN"}', 422),
    "5,000-character version": (
        RESPONSE_EVENT, {}, json.dumps({"label": "positive", "score": 0.9, "model_version": "v" * 5000}).encode(), 422
    ),
}  # fmt: skip


@pytest.mark.parametrize("probe", HOSTILE_EVENTS)
def test_hostile_events_get_a_4xx_naming_the_problem_and_monitoring_goes_on(
    monitor: RunningMonitor, probe: str
) -> None:
    event_type, extra_headers, body, status = HOSTILE_EVENTS[probe]
    event_id = f"hostile-{probe.replace(' ', '-').replace(',', '')}"
    with httpx.Client(base_url=monitor.url, timeout=30) as client:
        if event_type == RESPONSE_EVENT:  # its request first, so the response is what fails
            headers, request_body = binary_cloud_event(event_id, "request", {"text": "x"})
            assert client.post("/events", headers={**headers, **AUTH}, content=request_body).status_code == 200
        headers, _ = binary_cloud_event(event_id, "request" if event_type == REQUEST_EVENT else "response", {})
        answer = client.post("/events", headers={**headers, **extra_headers, **AUTH}, content=body)
        assert answer.status_code == status, answer.text
        assert answer.json()["error"]
        assert stored_at_once(client, f"after-{event_id}") < STORED_WITHIN_SECONDS


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
hostile_bodies = st.one_of(
    st.builds(lambda levels: with_extra(levels, '"text": "x"'), st.integers(1, 1100)),
    # json.dumps writes NaN and Infinity for such floats, and \\ud8xx escapes for lone surrogates.
    st.builds(lambda value: json.dumps({"label": "positive", "score": value, "text": value}).encode(), json_values),
    st.builds(lambda s: b'{"text": "\\u%04x"}' % s, st.integers(0xD800, 0xDFFF)),
    st.sampled_from([b"1e400", b"-1e400", b"[" * 2000, b'{"text": 123456789012345678901234567890}']),
    # v2 binary-tensor bodies (a JSON header, then raw bytes) with hostile headers, sizes and data.
    st.builds(
        lambda datatype, size, shape, tail: (
            json.dumps(
                {
                    "inputs": [
                        {"name": "text", "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": size}}
                    ]
                }
            ).encode()
            + tail
        ),
        st.sampled_from(["BYTES", "FP32", "BF16", "INT64", "BOOL", None]),
        st.one_of(st.integers(-5, 80), st.just(2**70), st.text(max_size=3)),
        st.one_of(st.lists(st.integers(-2, 4), max_size=3), st.none(), st.just([2**40])),
        st.binary(max_size=80),
    ),
)
hostile_times = st.one_of(
    st.none(),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1970-01-01T00:00:00Z", "NaN"]),
    st.text(max_size=30),
)


def test_generated_hostile_events_never_get_a_5xx(monitor: RunningMonitor) -> None:
    statuses: list[int] = []
    with httpx.Client(base_url=monitor.url, timeout=30) as client:

        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(kind=st.sampled_from(["request", "response"]), body=hostile_bodies, time_value=hostile_times,
               number=st.integers(0, 10**6))  # fmt: skip
        def probe(kind: str, body: bytes, time_value: str | None, number: int) -> None:
            headers, _ = binary_cloud_event(f"fuzz-{number}", kind, {})
            if time_value is not None:  # what a client can send in a header: printable ASCII
                headers["ce-time"] = "".join(char for char in time_value if " " <= char <= "~").strip()
            answer = client.post("/events", headers={**headers, **AUTH}, content=body)
            statuses.append(answer.status_code)
            assert answer.status_code < 500, f"{body[:200]!r} at {time_value!r} -> {answer.status_code}: {answer.text}"

        probe()
        assert stored_at_once(client, "after-the-fuzz") < STORED_WITHIN_SECONDS
    assert len(statuses) == FUZZ_EXAMPLES and {400} <= set(statuses)


def stored_texts(monitor_dir: Path, request_id: str) -> list[tuple[str, str]]:
    """(text, predicted label) of one request as the monitor's store holds them."""
    engine = sa.create_engine(f"sqlite:///{monitor_dir / 'monitor.db'}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text('SELECT text, predicted_label FROM predictions WHERE request_id = :id ORDER BY "index"'),
                {"id": request_id},
            )
            return [tuple(row) for row in rows]
    finally:
        engine.dispose()


def binary_v2_body(texts: list[str]) -> tuple[bytes, int]:
    """A v2 request in the binary-tensor format, as tritonclient sends by default, asking for binary outputs."""
    raw = bytes_tensor([text.encode() for text in texts])
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [len(texts)],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [
                {"name": name, "parameters": {"binary_data": True}} for name in ("label", "score", "probabilities")
            ],
        }
    ).encode()
    return header + raw, len(header)


def grpc_infer(target: str, texts: list[str], request_id: str) -> list[str]:
    """One gRPC ModelInfer with the texts as raw contents (tritonclient's way); the labels answered."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    raw = bytes_tensor([text.encode() for text in texts])
    request = pb.ModelInferRequest(
        model_name="textclf",
        id=request_id,
        inputs=[pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[len(texts)])],
        raw_input_contents=[raw],
    )
    with grpc.insecure_channel(target) as channel:
        response = GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    labels = next(index for index, output in enumerate(response.outputs) if output.name == "label")
    return [item.decode() for item in bytes_items(response.raw_output_contents[labels], "output 'label'")]


def test_every_protocol_the_predictor_answers_reaches_the_store(
    logging_server: RunningServer, monitor: RunningMonitor, monitor_dir: Path
) -> None:
    url = logging_server.url
    sent: dict[str, tuple[list[str], list[str]]] = {}  # request id -> (texts, labels answered)
    with httpx.Client(timeout=60) as client:
        texts = ["v1 one", "v1 two"]
        answer = client.post(f"{url}/v1/models/textclf:predict", json={"instances": texts},
                             headers={"x-request-id": "protocol-v1"})  # fmt: skip
        sent["protocol-v1"] = (texts, [item["label"] for item in answer.json()["predictions"]])
        texts = ["v2 json"]
        answer = client.post(
            f"{url}/v2/models/textclf/infer",
            headers={"x-request-id": "protocol-v2-json"},
            json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": texts}]},
        )
        sent["protocol-v2-json"] = (texts, answer.json()["outputs"][0]["data"])
        texts = ["v2 binary, café", "a second binary text"]
        body, header_length = binary_v2_body(texts)
        answer = client.post(f"{url}/v2/models/textclf/infer", content=body,
                             headers={"inference-header-content-length": str(header_length),
                                      "x-request-id": "protocol-v2-binary"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        sent["protocol-v2-binary"] = (texts, None)  # the labels arrive as binary outputs: read from the store below
        answer = client.post(f"{url}/predict", json={"text": "simple"}, headers={"x-request-id": "protocol-simple"})
        sent["protocol-simple"] = (["simple"], [answer.json()["label"]])
        texts = ["batch one", "batch two", "batch three"]
        answer = client.post(f"{url}/predict_batch", json={"texts": texts},
                             headers={"x-request-id": "protocol-batch"})  # fmt: skip
        sent["protocol-batch"] = (texts, [item["label"] for item in answer.json()["predictions"]])
    texts = ["over gRPC", "and a second"]
    sent["protocol-grpc"] = (texts, grpc_infer(logging_server.grpc_target, texts, "protocol-grpc"))

    deadline = time.monotonic() + 30
    while any(len(stored_texts(monitor_dir, id_)) < len(texts) for id_, (texts, _) in sent.items()):
        assert time.monotonic() < deadline, {id_: stored_texts(monitor_dir, id_) for id_ in sent}
        time.sleep(0.1)
    labels = httpx.get(f"{url}/health").json()["labels"]
    for request_id, (texts, answered) in sent.items():
        stored = stored_texts(monitor_dir, request_id)
        assert [text for text, _ in stored] == texts, request_id
        assert all(label in labels for _, label in stored), request_id
        if answered is not None:
            assert [label for _, label in stored] == answered, request_id
