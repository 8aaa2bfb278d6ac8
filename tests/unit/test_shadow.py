"""Shadow A/B in pieces: the shadow's thread priority, the shadowed share, shadow events and the comparison."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime

import pandas as pd
import pytest

from textclf.monitor.events import SHADOW_EVENT, MalformedEvent, parse_event, shadow_records
from textclf.monitor.shadow import compare_shadow
from textclf.serving.shadow import shadowed

pytestmark = pytest.mark.unit


def test_the_shadow_thread_runs_at_the_lowest_cpu_priority_and_the_caller_keeps_its_own() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from textclf.serving.shadow import lowest_priority

    def own_policy() -> int:
        return os.sched_getscheduler(threading.get_native_id())

    before = own_policy()
    with ThreadPoolExecutor(1, initializer=lowest_priority) as shadow_thread:
        assert shadow_thread.submit(own_policy).result(10) == os.SCHED_IDLE
    assert own_policy() == before == os.SCHED_OTHER


def test_the_shadowed_share_is_decided_by_the_request_id() -> None:
    ids = [f"request-{i}" for i in range(20_000)]
    assert all(shadowed(i, 100) for i in ids) and not any(shadowed(i, 0) for i in ids)
    share = sum(shadowed(i, 25) for i in ids) / len(ids)
    assert 0.23 < share < 0.27
    assert [shadowed(i, 25) for i in ids[:100]] == [shadowed(i, 25) for i in ids[:100]]


def shadow_event(payload: object, event_id: str = "r1") -> tuple[dict, bytes]:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": SHADOW_EVENT,
        "ce-source": "http://localhost/textclf-serve",
        "ce-inferenceservicename": "textclf",
        "ce-modelversion": "1",
        "content-type": "application/json",
    }
    return headers, json.dumps(payload).encode()


SHADOW_PAYLOAD = {
    "champion_version": "1",
    "challenger_version": "2",
    "champion": [{"label": "pos", "score": 0.9}, {"label": "neg", "score": 0.6}],
    "challenger": [{"label": "pos", "score": 0.8}, {"label": "pos", "score": 0.55}],
    "champion_ms": 12.5,
    "challenger_ms": 30.0,
}


def test_a_shadow_event_becomes_one_record_per_text() -> None:
    event = parse_event(*shadow_event(SHADOW_PAYLOAD))
    assert event.kind == "shadow"
    first, second = shadow_records(event)
    assert (first.index, first.champion_label, first.challenger_label, first.challenger_ms) == (0, "pos", "pos", 30.0)
    assert (second.champion_label, second.challenger_label, second.champion_version) == ("neg", "pos", "1")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"challenger": SHADOW_PAYLOAD["challenger"][:1]}, "2 champion but 1 challenger"),
        ({"challenger_version": ""}, "needs 'challenger_version'"),
        ({"champion_version": "v" * 201}, "at most 200"),
        ({"champion": "pos"}, "must be a list"),
        ({"champion": [{"score": 0.5}, {"label": "neg"}]}, "must be a list"),
        ({"challenger": [{"label": "pos", "score": "high"}, {"label": "pos"}]}, "not a number"),
        ({"challenger": [{"label": "pos", "score": 7}, {"label": "pos"}]}, "between 0 and 1"),
        ({"challenger_ms": -1}, "non-negative"),
        ({"champion_ms": "fast"}, "non-negative"),
        ({"champion_ms": True}, "non-negative"),
    ],
)
def test_a_malformed_shadow_event_says_what_is_wrong(change: dict, message: str) -> None:
    event = parse_event(*shadow_event({**SHADOW_PAYLOAD, **change}))
    with pytest.raises(MalformedEvent, match=message):
        shadow_records(event)


def test_an_infinite_time_is_no_json_the_monitor_reads() -> None:
    """Python writes float('inf') as Infinity, which no JSON parser of the servers' accepts (textclf.runtime.wire)."""
    with pytest.raises(MalformedEvent, match="not JSON"):
        parse_event(*shadow_event({**SHADOW_PAYLOAD, "champion_ms": float("inf")}))


def test_the_comparison_counts_agreement_per_class_latency_per_request_and_feedback_accuracy() -> None:
    now = datetime.now(UTC)
    rows = [
        # request, index, champion, challenger, champion ms, challenger ms, feedback
        ("a", 0, "pos", "pos", 10.0, 40.0, "pos"),
        ("a", 1, "neg", "pos", 10.0, 40.0, "pos"),
        ("b", 0, "neg", "neg", 30.0, 20.0, None),
        ("c", 0, "neg", "other", 20.0, 30.0, "neg"),
    ]
    frame = pd.DataFrame(
        [
            {
                "request_id": r,
                "index": i,
                "time": now,
                "model_name": "textclf",
                "champion_version": "1",
                "challenger_version": "2",
                "champion_label": a,
                "champion_score": 0.9,
                "challenger_label": b,
                "challenger_score": 0.8,
                "champion_ms": ams,
                "challenger_ms": bms,
                "feedback_label": f,
            }
            for r, i, a, b, ams, bms, f in rows
        ]
    )
    comparison = compare_shadow(frame)
    assert (comparison["texts"], comparison["requests"], comparison["agreement"]) == (4, 3, 0.5)
    assert comparison["per_class"]["neg"] == {
        "texts": 3,
        "disagreement": 0.666667,
        "challenger_said": {"other": 1, "pos": 1},
    }
    assert comparison["per_class"]["pos"]["disagreement"] == 0.0
    assert comparison["latency_ms"]["champion"]["p50"] == 20.0  # one value per request: 10, 30, 20
    assert comparison["labelled"] == 3
    assert comparison["accuracy"] == {"champion": 0.666667, "challenger": 0.666667}
    assert compare_shadow(frame.iloc[0:0])["texts"] == 0
