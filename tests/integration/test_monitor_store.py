"""The monitor's store against SQLite and a real PostgreSQL server: pairing, duplicates, feedback, races."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.events import binary_cloud_event, v2_exchange
from textclf.monitor.bounds import StoreBounds
from textclf.monitor.events import parse_event
from textclf.monitor.store import Feedback, MonitorStore
from textclf.monitor.tables import (
    checks_table,
    events_table,
    feedback_table,
    metadata,
    predictions_table,
    shadow_table,
)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MonitorStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'monitor.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    created = MonitorStore(url).create()
    if request.param == "postgresql":
        # One server serves every test: each starts from empty tables.
        with created.engine.begin() as connection:
            for table in metadata.sorted_tables:
                connection.execute(table.delete())
    yield created
    created.close()


def exchange_events(event_id: str, texts: list[str], labels: list[str], version: str = "1"):
    request, response = v2_exchange(texts, labels, version)
    return (
        parse_event(*binary_cloud_event(event_id, "request", request, version)),
        parse_event(*binary_cloud_event(event_id, "response", response, version)),
    )


def test_an_exchange_becomes_one_record_per_text_in_either_order(store: MonitorStore) -> None:
    request, response = exchange_events("a", ["good film", "bad film"], ["positive", "negative"])
    assert store.add_event(request).predictions_added == 0
    assert store.add_event(response).predictions_added == 2
    later_request, later_response = exchange_events("b", ["fine"], ["positive"])
    assert store.add_event(later_response).predictions_added == 0
    assert store.add_event(later_request).predictions_added == 1
    window = store.window("textclf", "1", size=10)
    assert window["text"].tolist() == ["good film", "bad film", "fine"]
    assert window["predicted_label"].tolist() == ["positive", "negative", "positive"]
    assert window["score"].tolist() == pytest.approx([0.9, 0.9, 0.9])


def test_a_repeated_event_is_stored_once(store: MonitorStore) -> None:
    request, response = exchange_events("a", ["good film"], ["positive"])
    assert store.add_event(request).new
    assert store.add_event(response).new
    repeated = store.add_event(response)
    assert not repeated.new and repeated.predictions_added == 0
    assert store.count(events_table) == 2
    assert store.count(predictions_table) == 1


def test_an_inconsistent_exchange_is_kept_and_reported(store: MonitorStore) -> None:
    request, _ = exchange_events("a", ["one", "two"], ["positive", "negative"])
    _, response = exchange_events("a", ["one"], ["positive"])
    store.add_event(request)
    outcome = store.add_event(response)
    assert outcome.pairing_error and "2 texts but the response 1" in outcome.pairing_error
    assert store.count(events_table) == 2
    assert store.count(predictions_table) == 0


def test_feedback_joins_its_prediction_even_when_it_arrives_first(store: MonitorStore) -> None:
    assert store.add_feedback([Feedback("early", "negative")]) == 0
    for event in exchange_events("early", ["dull"], ["positive"]):
        store.add_event(event)
    for event in exchange_events("late", ["great", "awful"], ["positive", "negative"]):
        store.add_event(event)
    assert store.add_feedback([Feedback("late", "positive", 0), Feedback("late", "positive", 1)]) == 2
    store.add_feedback([Feedback("late", "negative", 1)])
    window = store.window("textclf", "1", size=10)
    assert window["feedback_label"].tolist() == ["negative", "positive", "negative"]
    labelled = store.labelled()
    assert len(labelled) == 3
    future = datetime.now(UTC) + timedelta(hours=1)
    assert store.labelled(since=future).empty


def test_the_window_takes_the_latest_predictions_of_one_version(store: MonitorStore) -> None:
    for i in range(5):
        for event in exchange_events(f"v1-{i}", [f"text {i}"], ["positive"], version="1"):
            store.add_event(event)
    for event in exchange_events("v2-0", ["new model"], ["negative"], version="2"):
        store.add_event(event)
    assert store.window("textclf", "1", size=3)["text"].tolist() == ["text 2", "text 3", "text 4"]
    assert store.window("textclf", "2", size=3)["text"].tolist() == ["new model"]


def test_halves_arriving_at_once_always_pair(store: MonitorStore) -> None:
    exchanges = [exchange_events(f"race-{i}", [f"text {i}"], ["positive"]) for i in range(20)]
    barrier = threading.Barrier(2)

    def send(halves: list) -> None:
        for event in halves:
            barrier.wait()
            store.add_event(event)

    threads = [
        threading.Thread(target=send, args=([request for request, _ in exchanges],)),
        threading.Thread(target=send, args=([response for _, response in exchanges],)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count(predictions_table) == 20


def test_only_one_of_many_racing_checks_claims_an_episode(store: MonitorStore) -> None:
    now = datetime.now(UTC)
    barrier = threading.Barrier(8)
    claims: list[bool] = []

    def claim() -> None:
        barrier.wait()
        claims.append(store.claim_retraining("textclf/1/episode-0", now, 1, "drift", "report-1"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims) == [False] * 7 + [True]
    assert len(store.retraining_runs()) == 1
    assert store.retraining_history("textclf", "1") == (1, now)
    assert store.retraining_history("textclf", "2") == (0, now)


def test_a_future_dated_event_is_dated_at_its_arrival(store: MonitorStore) -> None:
    """A sender's clock (or a forger) cannot make an event the newest for good."""
    request, response = exchange_events("from-the-future", ["a text"], ["positive"])
    arrival = datetime.now(UTC)
    future = arrival + timedelta(days=3650)
    for event in (request, response):
        store.add_event(replace(event, time=future), received_at=arrival)
    window = store.window("textclf", "1", 10)
    assert window["time"].max().to_pydatetime() <= arrival


def test_retention_deletes_old_events_predictions_and_feedback_only(store: MonitorStore) -> None:
    long_ago, now = datetime.now(UTC) - timedelta(days=60), datetime.now(UTC)
    for event_id, moment in (("old", long_ago), ("new", now)):
        for event in exchange_events(event_id, ["a text"], ["positive"]):
            store.add_event(replace(event, time=moment), received_at=moment)
        store.add_feedback([Feedback(event_id, "negative", source="feedback-token@10.0.0.1")], received_at=moment)

    removed = store.prune(now - timedelta(days=30))

    assert removed == {
        "inference_events": 2, "predictions": 1, "shadow_predictions": 0, "feedback": 1, "drift_checks": 0
    }  # fmt: skip
    assert {request_id for request_id, _ in store.event_ids()} == {"new"}
    (row,) = store.labelled().itertuples()
    assert row.request_id == "new"
    with store.engine.connect() as connection:
        assert connection.execute(feedback_table.select()).one().source == "feedback-token@10.0.0.1"


def test_a_store_made_before_feedback_sources_gets_the_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                'CREATE TABLE feedback (request_id VARCHAR(200), "index" INTEGER, label VARCHAR(200), '
                'received_at DATETIME, PRIMARY KEY (request_id, "index"))'
            )
        )
        connection.execute(sa.text("INSERT INTO feedback VALUES ('r', 0, 'positive', '2026-01-01 00:00:00')"))
    store = MonitorStore(url).create()
    store.add_feedback([Feedback("r2", "negative", source="write-token@127.0.0.1")])
    with store.engine.connect() as connection:
        sources = {row.request_id: row.source for row in connection.execute(feedback_table.select())}
    assert sources == {"r": "", "r2": "write-token@127.0.0.1"}


def shadow_event(event_id: str, champion: list[str], challenger: list[str], challenger_version: str = "2"):
    from textclf.monitor.events import InferenceEvent

    payload = {
        "champion_version": "1",
        "challenger_version": challenger_version,
        "champion": [{"label": label, "score": 0.9} for label in champion],
        "challenger": [{"label": label, "score": 0.8} for label in challenger],
        "champion_ms": 5.0,
        "challenger_ms": 9.0,
    }
    return InferenceEvent(event_id, "shadow", datetime.now(UTC), "textclf", "1", payload)


def test_shadow_events_are_stored_once_per_text_and_windowed_per_challenger(store: MonitorStore) -> None:
    from textclf.monitor.events import MalformedEvent

    first = store.add_event(shadow_event("a", ["pos", "neg"], ["pos", "pos"]))
    assert (first.new, first.shadow_added) == (True, 2)
    assert store.add_event(shadow_event("a", ["pos", "neg"], ["pos", "pos"])).new is False
    store.add_event(shadow_event("b", ["neg"], ["neg"], challenger_version="3"))
    store.add_feedback([Feedback("a", "neg", index=1)])
    latest = store.shadow_window(10)
    assert latest["challenger_version"].tolist() == ["3"] and latest["request_id"].tolist() == ["b"]
    second = store.shadow_window(10, challenger_version="2")
    assert second["challenger_label"].tolist() == ["pos", "pos"]
    assert second["feedback_label"].tolist()[1] == "neg"
    with pytest.raises(MalformedEvent, match="1 champion but 2 challenger"):
        store.add_event(shadow_event("c", ["pos"], ["pos", "neg"]))
    assert ("c", "shadow") not in store.event_ids()
    future = replace(
        shadow_event("d", ["pos"], ["neg"], challenger_version="4"), time=datetime.now(UTC) + timedelta(days=1)
    )
    store.add_event(future)
    assert store.shadow_window(10, "4")["time"].max().to_pydatetime() <= datetime.now(UTC)
    assert store.prune(datetime.now(UTC) + timedelta(seconds=1))["shadow_predictions"] == 4


def test_age_is_judged_by_arrival_not_by_the_senders_clock(store: MonitorStore) -> None:
    """Issue 33: an event back-dated to 1970 had its prediction deleted at the next check."""
    now = datetime.now(UTC)
    for event in exchange_events("back-dated", ["a text"], ["positive"]):
        store.add_event(replace(event, time=datetime(1970, 1, 1, tzinfo=UTC)), received_at=now)
    store.add_check(now - timedelta(days=60), "1", "no_drift", "", {}, "")
    store.add_check(now, "1", "no_drift", "", {}, "")
    removed = store.prune(now - timedelta(days=30))
    assert (removed["inference_events"], removed["predictions"], removed["drift_checks"]) == (0, 0, 1)
    assert store.window("textclf", "1", 10)["request_id"].tolist() == ["back-dated"]
    assert len(store.checks()) == 1


def payload_characters(store: MonitorStore) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.sum(sa.func.length(events_table.c.payload)))).scalar() or 0)


def test_every_table_is_held_to_its_bounds_as_it_fills_the_newest_kept(store: MonitorStore) -> None:
    """Issue 33: 20 events of 5 MB added 100 MiB in 2.2 s, and drift checks were never pruned. Filled past every
    bound, each table stays within it after every write (rows, and the characters senders wrote), keeps what
    arrived last, and is trimmed to no less than 90 % of a bound it passed."""
    store.bounds = StoreBounds(
        event_bytes=40_000, prediction_text_bytes=12_000, predictions=30, shadow_records=10, feedback=15, checks=5
    )
    start = datetime.now(UTC) - timedelta(hours=1)
    for number in range(60):
        moment = start + timedelta(seconds=number)
        for event in exchange_events(f"r{number:03}", ["x" * 300], ["positive"]):
            store.add_event(event, received_at=moment)
        store.add_event(shadow_event(f"s{number:03}", ["pos"], ["neg"]), received_at=moment)
        store.add_feedback([Feedback(f"r{number:03}", "negative")], received_at=moment)
        store.add_check(moment, "1", "no_drift", "", {}, "")
        assert payload_characters(store) <= 40_000
        assert store.count(predictions_table) <= 30 and store.count(shadow_table) <= 10
        assert store.count(feedback_table) <= 15 and store.count(checks_table) <= 5
    kept = store.window("textclf", "1", 100)["request_id"].tolist()
    assert 0 < len(kept) * 300 <= 12_000 and kept == [f"r{n:03}" for n in range(60 - len(kept), 60)]
    assert store.count(shadow_table) >= 9 and store.count(feedback_table) >= 13
    checks = [check.checked_at for check in store.checks()]
    assert len(checks) >= 4 and checks == [start + timedelta(seconds=59 - n) for n in range(len(checks))]
    assert store.enforce_bounds() == dict.fromkeys(
        ("inference_events", "predictions", "shadow_predictions", "feedback", "drift_checks"), 0
    )


def test_a_store_made_before_arrival_times_gets_them_and_judges_its_old_rows_by_their_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    old_columns = [column.copy() for column in predictions_table.columns if column.name != "received_at"]
    sa.Table(predictions_table.name, sa.MetaData(), *old_columns).create(engine)
    with engine.begin() as connection:
        for request_id, moment in (("old", "2020-01-01 00:00:00"), ("recent", "2099-01-01 00:00:00")):
            connection.execute(
                sa.text(
                    "INSERT INTO predictions VALUES (:id, 0, :time, 'textclf', '1', 'a text', 'positive', 0.9, '[]')"
                ),
                {"id": request_id, "time": moment},
            )
    engine.dispose()
    store = MonitorStore(url).create()
    assert store.prune(datetime(2026, 1, 1, tzinfo=UTC))["predictions"] == 1
    with store.engine.connect() as connection:
        assert [row.request_id for row in connection.execute(predictions_table.select())] == ["recent"]
