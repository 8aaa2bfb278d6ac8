from __future__ import annotations

import asyncio
import threading
import time

import pytest

from textclf.serve.batching import BatcherClosed, BatchStats, MicroBatcher

pytestmark = pytest.mark.unit


def slow_echo(batches: list[list[str]], delay: float = 0.05):
    def predict(texts: list[str]) -> list[str]:
        batches.append(list(texts))
        time.sleep(delay)
        return [text.upper() for text in texts]

    return predict


def test_concurrent_requests_share_batches_and_each_gets_its_own_results() -> None:
    batches: list[list[str]] = []
    stats: list[BatchStats] = []

    async def scenario() -> list[list[str]]:
        batcher = MicroBatcher(slow_echo(batches), max_batch_size=64, on_batch=stats.append)
        requests = [[f"r{i}-a", f"r{i}-b"] for i in range(12)]
        answers = await asyncio.gather(*(batcher.predict(texts) for texts in requests))
        batcher.close()
        return answers

    answers = asyncio.run(scenario())
    assert answers == [[f"R{i}-A", f"R{i}-B"] for i in range(12)]
    # The first request runs alone (no waiting when idle); the others queue behind it and share a batch.
    assert len(batches) < 12
    assert max(len(batch) for batch in batches) > 2
    assert sum(stat.texts for stat in stats) == 24 and sum(stat.requests for stat in stats) == 12


def test_max_batch_size_caps_every_batch_and_a_request_is_answered_whole() -> None:
    batches: list[list[str]] = []

    async def scenario() -> list[list[str]]:
        batcher = MicroBatcher(slow_echo(batches), max_batch_size=4)
        answers = await asyncio.gather(*(batcher.predict([f"{i}a", f"{i}b", f"{i}c"]) for i in range(6)))
        batcher.close()
        return answers

    answers = asyncio.run(scenario())
    assert answers == [[f"{i}A", f"{i}B", f"{i}C"] for i in range(6)]
    assert all(len(batch) <= 4 for batch in batches)
    assert sorted(text for batch in batches for text in batch) == sorted(f"{i}{c}" for i in range(6) for c in "abc")


def test_max_wait_gathers_requests_that_arrive_a_little_later() -> None:
    batches: list[list[str]] = []

    async def scenario() -> None:
        # The batch is full at the third text: it goes then, so the long wait only bounds a stalled machine.
        batcher = MicroBatcher(slow_echo(batches, delay=0.0), max_batch_size=3, max_wait_ms=5_000)

        async def later(text: str, delay: float) -> list[str]:
            await asyncio.sleep(delay)
            return await batcher.predict([text])

        await asyncio.gather(later("first", 0), later("second", 0.02), later("third", 0.04))
        batcher.close()

    asyncio.run(scenario())
    assert batches == [["first", "second", "third"]]


def test_a_failing_batch_fails_its_callers_and_the_worker_carries_on() -> None:
    calls = []

    def flaky(texts: list[str]) -> list[str]:
        calls.append(texts)
        if "boom" in texts:
            raise ValueError("model failed")
        return texts

    async def scenario() -> list[str]:
        batcher = MicroBatcher(flaky)
        with pytest.raises(ValueError, match="model failed"):
            await batcher.predict(["boom"])
        answer = await batcher.predict(["fine"])
        batcher.close()
        return answer

    assert asyncio.run(scenario()) == ["fine"]


def test_closing_answers_what_was_queued_and_refuses_new_work() -> None:
    batches: list[list[str]] = []

    async def scenario() -> list[list[str]]:
        batcher = MicroBatcher(slow_echo(batches))
        queued = [asyncio.ensure_future(batcher.predict([f"t{i}"])) for i in range(5)]
        await asyncio.sleep(0)  # let them queue
        # close() comes from the thread that loaded the replacement model in the server
        closer = threading.Thread(target=batcher.close)
        closer.start()
        closer.join()
        answers = await asyncio.gather(*queued)
        with pytest.raises(BatcherClosed):
            await batcher.predict(["late"])
        return answers

    assert asyncio.run(scenario()) == [[f"T{i}"] for i in range(5)]


@pytest.mark.parametrize("options", [{"max_batch_size": 0}, {"max_wait_ms": -1}])
def test_invalid_settings_are_refused(options: dict) -> None:
    with pytest.raises(ValueError):
        MicroBatcher(lambda texts: texts, **options)


def recording(batches: list[list[str]], started: list[asyncio.Event], loop_of: list) -> object:
    """A model taking 2 ms a text that records each batch and tells the event loop when one starts."""

    def predict(texts: list[str]) -> list[str]:
        batches.append(list(texts))
        loop_of[0].call_soon_threadsafe(started[0].set)
        time.sleep(0.002 * len(texts))
        return [text.upper() for text in texts]

    return predict


def run_with_a_long_request(after_first_batch) -> list[list[str]]:
    """A 200-text request; once its first batch is computing, `after_first_batch(batcher, long_task, batches)`
    runs (`batches`: each batch as it starts)."""
    batches: list[list[str]] = []

    async def scenario() -> None:
        started, loop_of = [asyncio.Event()], [asyncio.get_running_loop()]
        # A budget of 20 ms: about 10 texts a batch once the first batch has been measured.
        batcher = MicroBatcher(recording(batches, started, loop_of), max_batch_size=64, target_batch_ms=20)
        long_task = asyncio.ensure_future(batcher.predict([f"long-{i}" for i in range(200)]))
        await started[0].wait()
        await after_first_batch(batcher, long_task, batches)
        batcher.close()

    asyncio.run(scenario())
    return batches


def test_a_short_request_waits_for_one_slice_of_a_long_one_not_for_all_of_it() -> None:
    """Issue 33: one request of 256 long texts held a one-text request for 46 s."""
    answers = {}

    async def send_short(batcher: MicroBatcher, long_task: asyncio.Future, _: list) -> None:
        answers["short"] = await batcher.predict(["short"])
        answers["long_done_first"] = long_task.done()
        answers["long"] = await long_task

    batches = run_with_a_long_request(send_short)
    assert answers["short"] == ["SHORT"] and answers["long_done_first"] is False
    assert answers["long"] == [f"LONG-{i}" for i in range(200)]
    short_batch = next(index for index, batch in enumerate(batches) if "short" in batch)
    assert short_batch <= 2, f"the short request waited for {short_batch} batches"
    assert len(batches) > short_batch + 3 and max(len(batch) for batch in batches) < 200


def test_two_long_requests_take_turns() -> None:
    async def send_another(batcher: MicroBatcher, long_task: asyncio.Future, _: list) -> None:
        other = await batcher.predict([f"other-{i}" for i in range(100)])
        assert other == [f"OTHER-{i}" for i in range(100)] and not long_task.done()
        await long_task

    batches = run_with_a_long_request(send_another)
    owners = ["other" if any(text.startswith("other") for text in batch) else "long" for batch in batches]
    first_other = owners.index("other")
    # From the other's first batch on, every batch but the first pair holds some of each, or they alternate.
    assert "long" in owners[first_other + 1 : first_other + 3]


def test_a_request_whose_caller_went_away_is_not_computed_further() -> None:
    async def cancel(batcher: MicroBatcher, long_task: asyncio.Future, _: list) -> None:
        long_task.cancel()
        # Served after whatever was computing when the caller went: the long request gave no more texts.
        assert await batcher.predict(["after"]) == ["AFTER"]

    batches = run_with_a_long_request(cancel)
    computed = sum(text.startswith("long") for batch in batches for text in batch)
    assert computed < 200 and batches[-1] == ["after"]


def test_a_short_request_goes_before_long_ones_however_many_are_waiting() -> None:
    """Least attained compute first: with three long requests waiting, a one-text request waits for the slice being
    computed, not for one slice of each."""
    found = {}

    async def send_more(batcher: MicroBatcher, long_task: asyncio.Future, batches: list) -> None:
        others = [asyncio.ensure_future(batcher.predict([f"other{n}-{i}" for i in range(100)])) for n in range(2)]
        await asyncio.sleep(0.05)  # the long ones have had turns
        found["computing"] = len(batches) - 1  # the batch computing now
        found["short"] = await batcher.predict(["short"])
        await asyncio.gather(long_task, *others)

    batches = run_with_a_long_request(send_more)
    assert found["short"] == ["SHORT"]
    assert any("other1-0" in batch for batch in batches[: found["computing"] + 1]), "the long ones had not started"
    short_batch = next(index for index, batch in enumerate(batches) if "short" in batch)
    # The batch after the one computing when it came (one more only if a batch started as it was sent).
    assert short_batch - found["computing"] <= 2, batches[found["computing"] : short_batch + 1]
