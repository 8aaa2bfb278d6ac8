"""JSON on the wire, read the same way by every server: the predictor reads requests with it, the monitor the
request-logger events that carry those requests and their responses. One parser and one depth limit at both ends:
a request the predictor answers is an event the monitor can store, so a single accepted request can never leave
the request logger retrying an event its sink refuses.

orjson refuses what Python's `json` accepts and a database then cannot store: NaN and infinite numbers, lone
surrogates, more than 1,024 levels (where `json` raises RecursionError). The depth limit below is far under the
recursion limits of everything downstream (Python's `json.dumps` fails near 1,000 levels, orjson's own `dumps` at
255); a structured CloudEvent around a v2 request, the deepest document the servers exchange, has 5.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_JSON_DEPTH = 32
"""Most levels of nested arrays and objects a request, or an event's payload, may have."""


class JsonRefused(ValueError):
    """Not JSON, or JSON nested deeper than allowed; the message says which and where."""


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
