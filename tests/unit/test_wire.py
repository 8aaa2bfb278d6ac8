"""The v2 binary-tensor decoder both servers share (textclf.runtime.wire): what tritonclient sends, read into its
JSON form; every malformed body a named 4xx-able error, never a crash, and read in bounded time at the size limit."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tests.support.events import bytes_tensor
from textclf.runtime.wire import JsonRefused, TensorsRefused, binary_v2_document, json_header_length

pytestmark = pytest.mark.unit


def binary_body(tensors: list[tuple[dict, bytes]], key: str = "inputs") -> tuple[bytes, int]:
    header = json.dumps({key: [{**tensor, "parameters": {"binary_data_size": len(raw)}} for tensor, raw in tensors]})
    return header.encode() + b"".join(raw for _, raw in tensors), len(header.encode())


def test_a_binary_request_and_response_read_as_their_json_form() -> None:
    texts = ["café } {", 'a "quoted" text', "x" * 1000]
    body, length = binary_body(
        [({"name": "text", "datatype": "BYTES", "shape": [3]}, bytes_tensor([t.encode() for t in texts]))]
    )
    for given in (length, None):  # the header's length as the predictor has it, or found as the monitor must
        document = binary_v2_document(body, given)
        assert document["inputs"][0]["data"] == texts
    scores = np.array([0.25, 0.5, 0.75], dtype="<f4")
    body, _ = binary_body(
        [
            ({"name": "label", "datatype": "BYTES", "shape": [3]}, bytes_tensor([b"a", b"b", b"c"])),
            ({"name": "score", "datatype": "FP32", "shape": [3]}, scores.tobytes()),
            ({"name": "counts", "datatype": "INT64", "shape": [1, 3]}, np.array([1, 2, 3], "<i8").tobytes()),
        ],
        key="outputs",
    )
    document = binary_v2_document(body)
    assert [tensor["data"] for tensor in document["outputs"]] == [["a", "b", "c"], [0.25, 0.5, 0.75], [1, 2, 3]]


def test_the_header_is_found_by_its_braces_outside_strings() -> None:
    header = b'{"inputs": [{"name": "}\\"{", "parameters": {"binary_data_size": 5}}]}'
    assert json_header_length(header + b'\x01\x00"}{') == len(header)
    assert json_header_length(b'  {"a": 1}') == len(b'  {"a": 1}')
    for not_a_header in (b"", b"[1, 2]", b'{"a": "unterminated', b'"x" {}', b"\x00\x01\x02"):
        assert json_header_length(not_a_header) is None


MALFORMED = {
    "length past the end": (bytes_tensor([b"ok"])[:-1], "BYTES", [1], "malformed"),
    "a partial length": (bytes_tensor([b"ok"]) + b"\x01\x00", "BYTES", [2], "malformed"),
    "bad UTF-8": (bytes_tensor([b"caf\xe9"]), "BYTES", [1], "not valid UTF-8"),
    "shape disagrees": (bytes_tensor([b"a", b"b"]), "BYTES", [3], "carries 2 items"),
    "negative shape": (bytes_tensor([b"a"]), "BYTES", [-1], "non-negative"),
    "no whole number of values": (b"\x00" * 5, "FP32", [1], "no whole number"),
    "unknown datatype": (b"\x00" * 4, "BF16", [2], "none of BYTES"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_tensors_are_refused_with_the_tensor_named(case: str) -> None:
    raw, datatype, shape, fragment = MALFORMED[case]
    body, length = binary_body([({"name": "text", "datatype": datatype, "shape": shape}, raw)])
    with pytest.raises(TensorsRefused, match=fragment) as refused:
        binary_v2_document(body, length)
    assert "input 'text'" in str(refused.value)


def test_sizes_that_do_not_fit_the_body_are_refused() -> None:
    for size in (-1, 10**12, "4", True, None):
        header = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                         "parameters": {"binary_data_size": size}}]}).encode()  # fmt: skip
        with pytest.raises(TensorsRefused, match="binary_data_size"):
            binary_v2_document(header + bytes_tensor([b"ok"]))
    with pytest.raises(JsonRefused, match="nested"):
        binary_v2_document(b'{"inputs": ' + b"[" * 100 + b"]" * 100 + b"}\x00")
    with pytest.raises(TensorsRefused, match="inputs"):
        binary_v2_document(b'{"tensors": []}')


def test_hostile_bodies_at_the_size_limit_are_read_in_bounded_time() -> None:
    size = 4 * 1024 * 1024
    hostile = [
        b'{"a": "' + b"\\\\" * (size // 2) + b'"}',  # escapes all the way
        b"{" * size,  # never closes
        b'{"a": "' + b"x" * size,  # a string that never ends
        b"{" + b'"",' * (size // 3),
        b"{" + b'"a":{},' * (size // 7),  # a brace every few bytes
        b'{"a": "' + b'\\"' * (size // 2),  # escaped quotes, never a closing one
    ]
    for body in hostile:
        started = time.monotonic()
        with pytest.raises((JsonRefused, TensorsRefused)):
            binary_v2_document(body)
        assert time.monotonic() - started < 2.0
