"""JSON on the wire, read the same way by every server: the predictor reads requests with it, the monitor the
request-logger events that carry those requests and their responses. One parser and one depth limit at both ends:
a request the predictor answers is an event the monitor can store, so a single accepted request can never leave
the request logger retrying an event its sink refuses.

orjson refuses what Python's `json` accepts and a database then cannot store: NaN and infinite numbers, lone
surrogates, more than 1,024 levels (where `json` raises RecursionError). The depth limit below is far under the
recursion limits of everything downstream (Python's `json.dumps` fails near 1,000 levels, orjson's own `dumps` at
255); a structured CloudEvent around a v2 request, the deepest document the servers exchange, has 5.

v2 bodies in the binary-tensor format (tritonclient's default) are read by one decoder at both ends too:
`binary_v2_document` turns one into its JSON form, so the monitor stores binary requests and responses as it stores
JSON ones.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import orjson

MAX_JSON_DEPTH = 32
"""Most levels of nested arrays and objects a request, or an event's payload, may have."""

MAX_REQUEST_HEAD_BYTES = 64 * 1024
"""Most bytes of one HTTP request head (request line and headers) any textclf server reads; past them, 431."""

REQUEST_HEAD_TIMEOUT_SECONDS = 20.0
"""Most seconds a client may take to send one HTTP request head (Apache's mod_reqtimeout allows 20 to 40); past
them, 408 and the connection is closed."""


MALFORMED_BYTES = "raw BYTES data is malformed (each item is a 4-byte length, then its bytes)"
"""What a BYTES tensor whose binary data cannot be read is told, however it came (HTTP binary tensors, gRPC)."""


class JsonRefused(ValueError):
    """Not JSON, or JSON nested deeper than allowed; the message says which and where."""


class TensorsRefused(ValueError):
    """A v2 binary-tensor body that cannot be read; the message names the tensor and what is wrong."""


# v2 datatypes other than BYTES as little-endian numpy types (the Open Inference Protocol's binary tensor data
# extension: "tensor data in row-major order ... little-endian"). BF16 has no numpy type and is not read.
NUMERIC_DATATYPES = {
    "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1", "INT16": "<i2",
    "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip
# Everything up to the next brace outside a JSON string (strings and their escapes skipped), then that brace: enough
# to find where the JSON object that starts a binary-tensor body ends without reading the binary data after it.
# Possessive, and matched where the last one ended (never searched for): linear in the body's length.
_UP_TO_A_BRACE = re.compile(rb'(?:[^"{}]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+[{}]', re.DOTALL)


def depth_of(value: Any, stop_after: int = MAX_JSON_DEPTH) -> int:
    """Levels of nested arrays and objects in a parsed document (a scalar is 0), counted without recursion and
    only as far as `stop_after` + 1: enough to tell a document over the limit."""
    deepest, frontier = 0, [value]
    while frontier and deepest <= stop_after:
        containers = [item for item in frontier if isinstance(item, dict | list)]
        if not containers:
            break
        deepest += 1
        frontier = [child for item in containers for child in (item.values() if isinstance(item, dict) else item)]
    return deepest


def load_json(data: bytes | str, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`data` parsed as the servers parse JSON; `JsonRefused` naming `what` when it cannot be, or when it is
    nested deeper than `max_depth`."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise JsonRefused(f"{what} is not JSON ({error})") from None
    if depth_of(value, max_depth) > max_depth:
        raise JsonRefused(f"{what} is nested more than {max_depth} levels deep; at most {max_depth} are read")
    return value


def json_header_length(body: bytes) -> int | None:
    """Length in bytes of the JSON object that starts `body`, found by matching its braces outside strings; None
    when the body does not start with a complete object. How a binary-tensor body is read when the
    `inference-header-content-length` header that gave the length is gone (KServe's agent logs the body alone)."""
    if body.lstrip()[:1] != b"{":
        return None
    depth, position = 0, 0
    while token := _UP_TO_A_BRACE.match(body, position):
        depth += 1 if token.group().endswith(b"{") else -1
        position = token.end()
        if depth == 0:
            return position
        if depth > MAX_JSON_DEPTH:  # a header this deep is refused anyway: no need to read further
            return None
    return None


def bytes_items(raw: bytes, tensor: str) -> list[bytes]:
    """The items of a binary BYTES tensor: each a 4-byte little-endian length, then that many bytes."""
    items, offset = [], 0
    while offset < len(raw):
        length = int.from_bytes(raw[offset : offset + 4], "little")
        offset += 4
        if offset > len(raw) or offset + length > len(raw):
            raise TensorsRefused(f"{tensor}: {MALFORMED_BYTES}")
        items.append(raw[offset : offset + length])
        offset += length
    return items


def tensor_data(raw: bytes, datatype: object, tensor: str) -> list:
    """A binary tensor's data as its JSON form would carry it: strings for BYTES (UTF-8), numbers otherwise."""
    if datatype == "BYTES":
        texts = []
        for index, item in enumerate(bytes_items(raw, tensor)):
            try:
                texts.append(item.decode("utf-8"))
            except UnicodeDecodeError as error:
                raise TensorsRefused(
                    f"{tensor}: item {index} is not valid UTF-8 (byte {error.start}): send texts encoded as UTF-8"
                ) from None
        return texts
    if datatype not in NUMERIC_DATATYPES:
        raise TensorsRefused(f"{tensor}: datatype {datatype!r} is none of BYTES, {', '.join(NUMERIC_DATATYPES)}")
    dtype = np.dtype(NUMERIC_DATATYPES[datatype])
    if len(raw) % dtype.itemsize:
        raise TensorsRefused(f"{tensor}: {len(raw)} bytes are no whole number of {datatype} values")
    return np.frombuffer(raw, dtype).tolist()


def binary_v2_document(body: bytes, header_length: int | None = None, what: str = "the body") -> dict:
    """A v2 request or response in the binary-tensor format as its JSON form: the JSON header with each binary
    tensor's `data` filled in. `header_length` is the `inference-header-content-length` header; without it the
    header's end is found (`json_header_length`). `JsonRefused` or `TensorsRefused` say what is wrong."""
    if header_length is None:
        header_length = json_header_length(body)
    if header_length is None or header_length > len(body):
        raise TensorsRefused(f"{what} does not start with the JSON header of a binary-tensor request or response")
    header = load_json(body[:header_length], f"the JSON header of {what}")
    key = "inputs" if isinstance(header, dict) and "inputs" in header else "outputs"
    if not isinstance(header, dict) or not isinstance(header.get(key), list):
        raise TensorsRefused('the JSON header must be an object with an "inputs" (or "outputs") list')
    offset = header_length
    for tensor in header[key]:
        if not isinstance(tensor, dict) or "data" in tensor:
            continue
        label = f"{key[:-1]} {tensor.get('name')!r}"
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(body):
            raise TensorsRefused(f"{label}: parameters.binary_data_size must count the bytes of its data in the body")
        tensor["data"] = tensor_data(body[offset : offset + size], tensor.get("datatype"), label)
        offset += size
        shape = tensor.get("shape")
        if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)):
            raise TensorsRefused(f"{label} must have a shape of non-negative integers, not {shape}")
        if math.prod(shape) != len(tensor["data"]):
            raise TensorsRefused(f"{label} declares shape {shape} but carries {len(tensor['data'])} items")
    return header
