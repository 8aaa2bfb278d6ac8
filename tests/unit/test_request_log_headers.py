"""No header value a client sends can break the request logger: unusable request ids are replaced, and every
value the logger sends is printable ASCII."""

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from textclf.serving.middleware import usable_request_id
from textclf.serving.request_logger import LoggedEvent, RequestLogger, header_value

pytestmark = pytest.mark.unit


def test_a_usable_request_id_is_kept_and_any_other_replaced() -> None:
    assert usable_request_id("abc-123_x.y") == "abc-123_x.y"
    for unusable in (None, "", "caf\u00e9", "a b", "x" * 201, "line\r\nbreak", "\x00"):
        replaced = usable_request_id(unusable)
        assert replaced != unusable and len(replaced) == 36


def test_header_values_are_printable_ascii() -> None:
    assert header_value("application/json") == "application/json"
    escaped = header_value("text/plain; charset=\u00e9\r\n\U0001f600")
    assert escaped.isascii() and escaped.isprintable() and "%E9" in escaped


def test_a_full_buffer_drops_new_events_and_counts_them() -> None:
    registry = CollectorRegistry()
    logger = RequestLogger("http://127.0.0.1:9/events", "textclf", buffer_bytes=2_000, registry=registry)
    event = LoggedEvent("request", "id-1", b"x" * 600, "application/json", "predict", "1")

    async def log_three() -> None:
        for _ in range(3):
            logger.log(event)
        logger._worker.cancel()

    asyncio.run(log_three())
    assert logger.pending == 2
    assert registry.get_sample_value("textclf_request_log_dropped_total", {"reason": "buffer_full"}) == 1
