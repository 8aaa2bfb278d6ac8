"""Generated input against the monitor's write endpoints, as a real process with tokens set: events (binary
and structured mode, hostile and long attribute values and bodies), feedback, checks, with and without the
token. No request may get a 5xx, and the monitor must still store a good event afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.events import binary_cloud_event, v2_exchange
from tests.support.hostile import HOSTILE_SHAPES
from tests.support.servers import monitor_server
from textclf.monitor.events import SHADOW_EVENT

pytestmark = pytest.mark.integration

TOKEN = "fuzz-write-token"
EXAMPLES = 1000
MAX_EVENT_BYTES = 262_144

long_values = st.builds(
    lambda shape, length: HOSTILE_SHAPES[shape](length), st.sampled_from(sorted(HOSTILE_SHAPES)), st.integers(1, 3000)
)
# Header values go as raw bytes (UTF-8, lone surrogates replaced), less what HTTP/1.1 forbids in a header
# value (control characters, surrounding spaces), which the client refuses to send.
header_values = (st.text(max_size=40) | long_values).map(
    lambda value: bytes(byte for byte in value.encode("utf-8", "replace") if byte >= 0x20 and byte != 0x7F).strip()
)
texts = st.text(max_size=60) | long_values
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
attribute_values = st.sampled_from(
    ["1.0", "textclf", "org.kubeflow.serving.inference.request", SHADOW_EVENT, "x" * 201]
)
event_headers = st.fixed_dictionaries(
    {},
    optional={
        name: header_values | attribute_values
        for name in ("ce-specversion", "ce-id", "ce-type", "ce-source", "ce-inferenceservicename", "ce-modelversion",
                     "ce-time", "content-type", "authorization")
    },
)  # fmt: skip
bodies = json_values.map(lambda value: json.dumps(value).encode()) | st.binary(max_size=400)
feedback_bodies = (
    st.fixed_dictionaries({"request_id": texts, "label": texts}, optional={"index": st.integers(-2, 10**12)})
    | st.lists(st.fixed_dictionaries({"request_id": texts, "label": texts}), max_size=5)
    | json_values
).map(lambda value: json.dumps(value).encode())
# Shadow events with every header right and a hostile body: the payload's own checks answer, never a 5xx.
shadow_predictions = st.lists(
    st.fixed_dictionaries({"label": json_values}, optional={"score": json_values}) | json_values, max_size=6
)
shadow_bodies = st.fixed_dictionaries(
    {},
    optional={
        **{name: json_values for name in ("champion_version", "challenger_version", "champion_ms", "challenger_ms")},
        "champion": shadow_predictions,
        "challenger": shadow_predictions,
    },
).map(lambda value: json.dumps(value).encode())
shadow_headers = st.builds(
    lambda event_id: {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": SHADOW_EVENT,
        "ce-source": "fuzz",
        "ce-inferenceservicename": "textclf",
        "content-type": "application/json",
        "authorization": f"Bearer {TOKEN}",
    },
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=250),
)
requests = st.one_of(
    st.tuples(st.just("/events"), event_headers, bodies),
    st.tuples(st.just("/events"), shadow_headers, shadow_bodies),
    st.tuples(st.just("/feedback"), st.sampled_from([{}, {"authorization": f"Bearer {TOKEN}"}]), feedback_bodies),
    st.tuples(st.just("/events"), st.just({"authorization": f"Bearer {TOKEN}"}), bodies),
)


def test_generated_writes_never_get_a_5xx_and_the_monitor_survives(tmp_path: Path) -> None:
    statuses: list[int] = []
    options = ("--check-interval", "0", "--set", f"write_token={TOKEN}", "--set", f"max_event_bytes={MAX_EVENT_BYTES}")
    with monitor_server(tmp_path, *options) as monitor, httpx.Client(base_url=monitor.url, timeout=30) as client:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(request=requests)
        def probe(request: tuple[str, dict[str, str], bytes]) -> None:
            path, headers, body = request
            response = client.post(path, headers=headers, content=body)
            statuses.append(response.status_code)
            assert response.status_code < 500, f"{request!r:.500} -> {response.status_code}: {response.text[:300]}"

        probe()
        request, _ = v2_exchange(["still here"], ["positive"])
        headers, body = binary_cloud_event("after-the-fuzz", "request", request)
        assert client.post("/events", headers={**headers, "authorization": f"Bearer {TOKEN}"}, content=body).is_success
        assert client.get("/health").status_code == 200
    assert len(statuses) == EXAMPLES
    assert {200, 401} <= set(statuses), "the generated requests reached both the refusal and the store"
