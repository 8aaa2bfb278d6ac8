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


def test_max_batch_size_caps_a_batch_but_never_splits_a_request() -> None:
    batches: list[list[str]] = []

    async def scenario() -> None:
        batcher = MicroBatcher(slow_echo(batches), max_batch_size=4)
        await asyncio.gather(*(batcher.predict([f"{i}a", f"{i}b", f"{i}c"]) for i in range(6)))
        batcher.close()

    asyncio.run(scenario())
    assert all(len(batch) <= 6 for batch in batches)  # one 3-text request plus at most one more
    assert sorted(text for batch in batches for text in batch) == sorted(f"{i}{c}" for i in range(6) for c in "abc")


def test_max_wait_gathers_requests_that_arrive_a_little_later() -> None:
    batches: list[list[str]] = []

    async def scenario() -> None:
        batcher = MicroBatcher(slow_echo(batches, delay=0.0), max_batch_size=8, max_wait_ms=200)

        async def later(text: str, delay: float) -> list[str]:
            await asyncio.sleep(delay)
            return await batcher.predict([text])

        await asyncio.gather(later("first", 0), later("second", 0.05), later("third", 0.1))
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
