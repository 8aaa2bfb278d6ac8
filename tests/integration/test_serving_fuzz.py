"""Generated input against every inference endpoint of the real server: no request may get a 5xx, and the
server must still answer a good request afterwards."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hostile import HOSTILE_SHAPES

pytestmark = pytest.mark.integration

MODEL = "textclf"
EXAMPLES_PER_SHAPE = 220
ENDPOINTS = ("/predict", "/predict_batch", f"/v1/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer")

# Long and hostile texts too, around the fixture server's 20,000-character limit (SERVING_TEST_LIMITS).
long_texts = st.builds(
    lambda shape, length: HOSTILE_SHAPES[shape](length), st.sampled_from(sorted(HOSTILE_SHAPES)), st.integers(2, 24_000)
)
texts = st.text(max_size=60) | st.sampled_from(["", " ", "\x00", "\ud800", "é" * 30, "ok"]) | long_texts
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | texts
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
v2_tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["text", "TEXT", "other"]) | st.text(max_size=5),
        "datatype": st.sampled_from(["BYTES", "FP32", "INT64", "bytes"]) | st.text(max_size=5),
        "shape": st.lists(st.integers(-3, 12), max_size=3) | json_values,
        "data": st.lists(texts | json_values, max_size=10) | json_values,
    },
    optional={"parameters": json_values},
)
bodies_by_endpoint = {
    "/predict": st.fixed_dictionaries({"text": texts | json_values}) | json_values,
    "/predict_batch": st.fixed_dictionaries({"texts": st.lists(texts | json_values, max_size=10) | json_values})
    | json_values,
    f"/v1/models/{MODEL}:predict": st.fixed_dictionaries(
        {"instances": st.lists(texts | st.fixed_dictionaries({"text": texts}) | json_values, max_size=10) | json_values}
    )
    | json_values,
    f"/v2/models/{MODEL}/infer": st.fixed_dictionaries(
        {"inputs": st.lists(v2_tensors, max_size=3) | json_values},
        optional={"id": json_values, "parameters": json_values, "outputs": json_values},
    )
    | json_values,
}
raw_requests = st.tuples(
    st.sampled_from(ENDPOINTS),
    st.binary(max_size=200),
    st.sampled_from(["application/json", "application/octet-stream", "text/plain", ""]),
    st.none() | st.sampled_from(["0", "5", "-1", "abc", "99999"]) | st.integers(0, 250).map(str),
)


def test_generated_requests_never_get_a_5xx_and_the_server_survives(serving_server) -> None:
    statuses: list[int] = []

    with httpx.Client(base_url=serving_server.url, timeout=30) as client:

        def check(response: httpx.Response, what: str) -> None:
            statuses.append(response.status_code)
            assert response.status_code < 500, f"{what} -> {response.status_code}: {response.text[:500]}"

        @settings(
            max_examples=EXAMPLES_PER_SHAPE * len(ENDPOINTS), deadline=None, suppress_health_check=list(HealthCheck)
        )
        @given(request=st.one_of([st.tuples(st.just(path), bodies) for path, bodies in bodies_by_endpoint.items()]))
        def json_probe(request: tuple[str, object]) -> None:
            endpoint, body = request
            encoded = json.dumps(body, allow_nan=True).encode()
            check(client.post(endpoint, content=encoded, headers={"content-type": "application/json"}), repr(request))

        json_probe()

        @settings(max_examples=EXAMPLES_PER_SHAPE, deadline=None, suppress_health_check=list(HealthCheck))
        @given(request=raw_requests)
        def raw_probe(request: tuple[str, bytes, str, str | None]) -> None:
            endpoint, body, content_type, binary_header = request
            headers = {"content-type": content_type} if content_type else {}
            if binary_header is not None:
                headers["inference-header-content-length"] = binary_header
            check(client.post(endpoint, content=body, headers=headers), repr(request))

        raw_probe()

        assert len(statuses) >= 1000, f"only {len(statuses)} generated requests ran"
        assert statuses.count(200) > 0, "no generated request was valid: the generators are off"
        assert client.post("/predict", json={"text": "Still answering after all that."}).status_code == 200
        assert client.get("/health").json()["status"] == "ok"
