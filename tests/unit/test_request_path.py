"""Less work per request: the server freezes the objects a loaded model leaves (full garbage collections over
them stalled the event loop for hundreds of milliseconds) and collects a replaced model's cycles when the next one
loads. (KServe's per-request timing middleware: tests/unit/test_kserve_app.py.)"""

from __future__ import annotations

import gc
import weakref

import pytest
from prometheus_client import CollectorRegistry

from textclf.runtime.cpu import settle_long_lived_objects

pytestmark = pytest.mark.unit


class Cyclic:
    """An object that refers to itself: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.itself = self


@pytest.fixture
def unfrozen_after():
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen_after")
def test_settling_freezes_survivors_and_collects_what_was_frozen_before_once_it_is_garbage() -> None:
    kept = Cyclic()
    replaced = Cyclic()
    replaced_ref = weakref.ref(replaced)
    frozen = settle_long_lived_objects()
    # A frozen object still dies by reference counting (another thread's temporaries, in a long test run), and
    # leaves the permanent generation: the count can only have fallen since.
    assert 0 < gc.get_freeze_count() <= frozen
    del replaced
    gc.collect()
    assert replaced_ref() is not None, "a frozen cycle is out of the collector's reach"
    settle_long_lived_objects()
    assert replaced_ref() is None, "the next settle (the next model's load) collects it"
    assert gc.get_freeze_count() > 0 and kept.itself is kept


@pytest.mark.usefixtures("unfrozen_after")
def test_loading_the_served_model_settles_the_heap(step_inputs: dict) -> None:
    from textclf.config import ServingConfig
    from textclf.serving.prometheus import ServingMetrics
    from textclf.serving.server import served_slot

    gc.unfreeze()
    config = ServingConfig(model=str(step_inputs["model"]), backend="torch")
    slot = served_slot(config, ServingMetrics.create(CollectorRegistry()), shadow=None)
    try:
        assert slot.load()
        assert gc.get_freeze_count() > 0
    finally:
        slot.unload()
        slot.stop()
