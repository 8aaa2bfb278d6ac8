"""Less work per request: the server freezes the objects a loaded model leaves (full garbage collections over
them stalled the event loop for hundreds of milliseconds), collects a replaced model's cycles when the next one
loads, and leaves out KServe's per-request timing middleware while the log it writes is off."""

from __future__ import annotations

import gc
import logging
import weakref
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
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
    from textclf.serving.model import TextClassifierModel
    from textclf.serving.prometheus import ServingMetrics

    gc.unfreeze()
    config = ServingConfig(model=str(step_inputs["model"]), backend="torch")
    model = TextClassifierModel("textclf", config, ServingMetrics.create(CollectorRegistry()))
    try:
        assert model.load()
        assert gc.get_freeze_count() > 0
    finally:
        model.unload()
        model.stop()


@pytest.mark.parametrize("verbose", [False, True])
def test_kserve_adds_its_timing_middleware_only_when_its_log_is_on(verbose: bool) -> None:
    from kserve.protocol.rest.server import RESTServer
    from timing_asgi import TimingMiddleware

    from textclf.serving.routes import skip_unlogged_timing

    trace = logging.getLogger("kserve.trace")
    level = trace.level
    trace.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        app = FastAPI()
        skip_unlogged_timing(app)
        RESTServer._add_middlewares(SimpleNamespace(access_log_format=None), app)  # what KServe does at start
    finally:
        trace.setLevel(level)
    assert any(entry.cls is TimingMiddleware for entry in app.user_middleware) is verbose
