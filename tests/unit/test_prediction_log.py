from __future__ import annotations

import base64
import json

import pytest

from textclf.monitor.events import REQUEST_EVENT, RESPONSE_EVENT, MalformedEvent, parse_event, prediction_records

pytestmark = pytest.mark.unit


def binary(event_type: str, payload: object, event_id: str = "r1", **extra: str) -> tuple[dict, bytes]:
    headers = {
        "Ce-Specversion": "1.0",
        "Ce-Id": event_id,
        "Ce-Type": event_type,
        "Ce-Source": "http://localhost:9081/",
        "Ce-Inferenceservicename": "textclf",
        "Ce-Time": "2026-11-22T10:00:00Z",
        "Content-Type": "application/json",
        **extra,
    }
    return headers, json.dumps(payload).encode()


def structured(event_type: str, payload: object, encode: bool = False) -> tuple[dict, bytes]:
    document = {"specversion": "1.0", "id": "r1", "type": event_type, "source": "kserve", "modelversion": "4"}
    if encode:
        document["data_base64"] = base64.b64encode(json.dumps(payload).encode()).decode()
    else:
        document["data"] = payload
    return {"content-type": "application/cloudevents+json"}, json.dumps(document).encode()


V2_REQUEST = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["good", "bad"]}]}
V2_RESPONSE = {
    "model_name": "textclf",
    "model_version": "4",
    "outputs": [
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["positive", "negative"]},
        {"name": "score", "datatype": "FP32", "shape": [2], "data": [0.9, 0.8]},
        {"name": "probabilities", "datatype": "FP32", "shape": [2, 2], "data": [0.1, 0.9, 0.8, 0.2]},
    ],
}


def test_binary_mode_v2_pair_gives_one_record_per_text() -> None:
    request = parse_event(*binary(REQUEST_EVENT, V2_REQUEST))
    response = parse_event(*binary(RESPONSE_EVENT, V2_RESPONSE))
    records = prediction_records(request, response)
    assert [(r.index, r.text, r.predicted_label, r.score) for r in records] == [
        (0, "good", "positive", 0.9),
        (1, "bad", "negative", 0.8),
    ]
    assert records[1].probabilities == [0.8, 0.2]
    assert records[0].model_version == "4" and records[0].model_name == "textclf"
    assert records[0].time.isoformat() == "2026-11-22T10:00:00+00:00"


@pytest.mark.parametrize("encode", [False, True], ids=["data", "data_base64"])
def test_structured_mode_reads_the_same(encode: bool) -> None:
    request = parse_event(*structured(REQUEST_EVENT, {"instances": ["good", {"text": "bad"}]}, encode))
    response = parse_event(
        *structured(
            RESPONSE_EVENT,
            {
                "predictions": [
                    {"label": "positive", "score": 0.9, "probabilities": {"negative": 0.1, "positive": 0.9}},
                    {"label": "negative", "score": 0.7, "probabilities": {"negative": 0.7, "positive": 0.3}},
                ]
            },
            encode,
        )
    )
    records = prediction_records(request, response)
    assert [r.text for r in records] == ["good", "bad"]
    assert records[1].probabilities == [0.7, 0.3] and records[1].model_version == "4"


def test_simple_api_pair() -> None:
    request = parse_event(*binary(REQUEST_EVENT, {"text": "fine"}))
    response = parse_event(*binary(RESPONSE_EVENT, {"label": "positive", "score": 0.6, "model_version": "2"}))
    [record] = prediction_records(request, response)
    assert (record.text, record.predicted_label, record.model_version) == ("fine", "positive", "2")


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"content-type": "application/json", "ce-id": "1"}, b"{}", "lacks required attribute"),
        (binary(REQUEST_EVENT, {})[0], b"{not json", "not JSON"),
        (binary("com.example.other", {})[0], b"{}", "none of"),
        ({**binary(REQUEST_EVENT, {})[0], "Ce-Time": "yesterday"}, b"{}", "RFC 3339"),
        ({"content-type": "application/cloudevents+json"}, b"[1, 2]", "JSON object"),
    ],
)
def test_malformed_events_say_what_is_wrong(headers: dict, body: bytes, message: str) -> None:
    with pytest.raises(MalformedEvent, match=message):
        parse_event(headers, body)


def test_mismatched_pairs_are_refused() -> None:
    request = parse_event(*binary(REQUEST_EVENT, V2_REQUEST))
    with pytest.raises(MalformedEvent, match="not one exchange"):
        prediction_records(request, parse_event(*binary(RESPONSE_EVENT, V2_RESPONSE, event_id="other")))
    one_prediction = {**V2_RESPONSE, "outputs": [{**t, "data": t["data"][:1]} for t in V2_RESPONSE["outputs"]]}
    with pytest.raises(MalformedEvent, match="2 texts but the response 1"):
        prediction_records(request, parse_event(*binary(RESPONSE_EVENT, one_prediction)))
    with pytest.raises(MalformedEvent, match="holds no texts"):
        prediction_records(
            parse_event(*binary(REQUEST_EVENT, {"foo": 1})), parse_event(*binary(RESPONSE_EVENT, V2_RESPONSE))
        )


def test_non_numeric_scores_are_malformed_not_a_crash() -> None:
    request = parse_event(*binary(REQUEST_EVENT, {"text": "fine"}))
    with pytest.raises(MalformedEvent, match="not numbers"):
        prediction_records(request, parse_event(*binary(RESPONSE_EVENT, {"label": "positive", "score": "high"})))


def test_a_plain_postgresql_url_uses_the_driver_textclf_installs() -> None:
    """docker-compose.yml gives the monitor postgresql://...; SQLAlchemy 2.1 reads that as psycopg 3, which no
    textclf installation holds (the monitor crashed at start in Compose)."""
    from textclf.monitor.store import create_engine

    assert create_engine("postgresql://textclf:secret@postgres:5432/textclf").dialect.driver == "psycopg2"
    assert create_engine("postgresql+psycopg2://u@h/db").dialect.driver == "psycopg2"


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        # The probes: each of these got a 5xx, which the request logger retried for ever.
        (binary(REQUEST_EVENT, {})[0], f'{{"instances": ["a"], "extra": {deep(1000)}}}'.encode(), "nested more than"),
        ({"content-type": "application/cloudevents+json"},
         b'{"specversion": "1.0", "id": "r1", "type": "%s", "source": "s", "time": 12345, "data": {}}'
         % REQUEST_EVENT.encode(), "time must be an RFC 3339 timestamp string, not int"),
        ({"content-type": "application/cloudevents+json"},
         b'{"specversion": "1.0", "id": "\\udc80", "type": "%s", "source": "s", "data": {}}' % REQUEST_EVENT.encode(),
         "not JSON"),
        ({**binary(REQUEST_EVENT, {})[0], "Ce-Time": "0001-01-01T00:00:00+14:00"}, b"{}", "with a UTC value"),
        (binary(RESPONSE_EVENT, {})[0], b'{"label": "positive", "score": NaN}', "not JSON"),
        (binary(RESPONSE_EVENT, {})[0], b'{"label": "positive", "score": 1e400}', "not JSON"),
        ({"content-type": "application/cloudevents+json"},
         b'{"specversion": "1.0", "id": "r1", "type": "%s", "source": "s", "data": %s}'
         % (REQUEST_EVENT.encode(), deep(40).encode()),
         r"CloudEvent \(an envelope around data of 32 levels\) is nested more than 33"),
    ],
)  # fmt: skip
def test_hostile_events_are_malformed_naming_the_field(headers: dict, body: bytes, message: str) -> None:
    with pytest.raises(MalformedEvent, match=message):
        parse_event(headers, body)


def test_a_payload_at_the_depth_limit_is_read_in_both_modes() -> None:
    from textclf.runtime.wire import MAX_JSON_DEPTH

    payload = {"instances": ["a"], "extra": json.loads(deep(MAX_JSON_DEPTH - 1))}
    assert parse_event(*binary(REQUEST_EVENT, payload)).payload == payload
    assert parse_event(*structured(REQUEST_EVENT, payload)).payload == payload


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ({"label": "positive", "score": "NaN"}, "not all finite"),
        ({"label": "positive", "score": 0.9, "probabilities": [0.1, "inf"]}, "not all finite"),
        ({"label": "p" * 201, "score": 0.9}, "label of text 0 has 201 characters"),
        ({"label": "positive", "score": 0.9, "model_version": "v" * 5000}, "model_version has 5000 characters"),
    ],
)
def test_responses_the_store_could_not_keep_are_malformed(response: dict, message: str) -> None:
    """A NaN score got 503 on every resend (the store refused it); a 5,000-character version was stored."""
    request = parse_event(*binary(REQUEST_EVENT, {"text": "fine"}))
    with pytest.raises(MalformedEvent, match=message):
        prediction_records(request, parse_event(*binary(RESPONSE_EVENT, response)))


def test_the_version_that_answered_is_recorded() -> None:
    """The response body names the version that computed the answer; the event's attribute the one served when
    the event was logged (after a hot swap, the next one). Without a version in the body, the attribute's."""
    request = parse_event(*binary(REQUEST_EVENT, V2_REQUEST, **{"Ce-Modelversion": "5"}))
    response = parse_event(*binary(RESPONSE_EVENT, V2_RESPONSE, **{"Ce-Modelversion": "5"}))
    assert {record.model_version for record in prediction_records(request, response)} == {"4"}
    unversioned = {key: value for key, value in V2_RESPONSE.items() if key != "model_version"}
    response = parse_event(*binary(RESPONSE_EVENT, unversioned, **{"Ce-Modelversion": "5"}))
    assert {record.model_version for record in prediction_records(request, response)} == {"5"}
