"""Schemathesis against the predictor's own OpenAPI document: every operation it documents, with generated path,
query, header and body values, valid by the schema (positive) and not (negative), may answer a 4xx but never a 5xx;
and sequences of them, the model unloaded and loaded between, never a 5xx but the 503 an unloaded model answers.

Each operation's cases come from schemathesis's strategy and run under Hypothesis here: schemathesis 4.32's pytest
plugin does not run on pytest 9 (it reads `Function._nodeid`, which pytest 9 removed)."""

from __future__ import annotations

import collections
from typing import ClassVar

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from tests.support.servers import RunningServer, admin

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION_AND_MODE = 60
ADMIN = admin()
STATEFUL_SEQUENCES = 15
STATEFUL_STEPS = 12
OPERATIONS_PER_STEP = 8


@pytest.mark.parametrize("with_token", [False, True], ids=["anyone", "with the admin token"])
def test_no_documented_operation_answers_a_server_error(admin_server: RunningServer, with_token: bool) -> None:
    url = admin_server.url
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    headers = ADMIN if with_token else {}
    server_errors: dict[str, list[str]] = {}
    cases = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        # With the token, the generated repository requests may unload the model: every other answer is then
        # a 503 by design (tests/integration/test_serving_hardening.py), so that run keeps to the admin routes.
        if with_token != operation.path.startswith("/v2/repository/"):
            continue
        for mode in schemathesis.GenerationMode:

            @given(case=operation.as_strategy(mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case: schemathesis.Case) -> None:
                nonlocal cases
                cases += 1
                response = case.call(base_url=url, headers=headers, timeout=60)
                if response.status_code >= 500:
                    server_errors.setdefault(f"{case.operation.label} {response.status_code}", []).append(
                        f"{case.path_parameters} {case.query} {str(case.body)[:200]}: {response.text[:300]}"
                    )

            try:
                call()
            except Unsatisfiable:
                # Negative cases need something to make invalid: an operation without parameters has none.
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label

    print(
        f"schemathesis, {'with' if with_token else 'without'} the admin token: {cases} cases, {len(server_errors)} 5xx"
    )
    assert cases > (10 if with_token else 200), cases
    assert not server_errors, server_errors
    if with_token:
        assert httpx.post(f"{url}/v2/repository/models/textclf/load", headers=headers, timeout=300).status_code == 200
    assert httpx.post(f"{url}/predict", json={"text": "still answering"}, timeout=60).status_code == 200


class Lifecycle(RuleBasedStateMachine):
    """Sequences of every documented operation (cases drawn from schemathesis's strategies, with the admin token),
    interleaved with unloading and loading the model: no 5xx, but a 503 while the model is unloaded."""

    url: ClassVar[str] = ""
    operations: ClassVar[list] = []
    calls: ClassVar[collections.Counter[str]] = collections.Counter()

    def __init__(self) -> None:
        super().__init__()
        self.loaded = True

    @rule(data=st.data(), count=st.integers(1, OPERATIONS_PER_STEP))
    def call_operations(self, data: st.DataObject, count: int) -> None:
        """A few operations per step, so that they outnumber the loads and unloads."""
        for _ in range(count):
            operation = data.draw(st.sampled_from(self.operations))
            case = data.draw(operation.as_strategy(schemathesis.GenerationMode.POSITIVE))
            response = case.call(base_url=self.url, headers=ADMIN, timeout=60)
            self.calls[f"{response.status_code}{'' if self.loaded else ' while unloaded'}"] += 1
            unloaded_answer = response.status_code == 503 and not self.loaded
            assert response.status_code < 500 or unloaded_answer, (
                f"{operation.label} {case.path_parameters} {case.query}: {response.status_code} {response.text[:300]}"
            )
            if response.status_code == 200 and case.path_parameters.get("model_name") == "textclf":
                self.loaded = {"load": True, "unload": False}.get(case.path.rsplit("/", 1)[-1], self.loaded)

    @rule()
    def unload_or_load(self) -> None:
        """Unload the model when it is loaded, else load it: the next steps run in the other state."""
        action = "unload" if self.loaded else "load"
        response = httpx.post(f"{self.url}/v2/repository/models/textclf/{action}", headers=ADMIN, timeout=300)
        assert response.status_code == 200, response.text
        self.calls[action] += 1
        self.loaded = action == "load"

    def teardown(self) -> None:
        if not self.loaded:
            httpx.post(f"{self.url}/v2/repository/models/textclf/load", headers=ADMIN, timeout=300).raise_for_status()


def test_no_sequence_of_operations_answers_a_server_error_but_503_while_unloaded(
    admin_server: RunningServer,
) -> None:
    Lifecycle.url = admin_server.url
    schema = schemathesis.openapi.from_url(f"{admin_server.url}/openapi.json")
    Lifecycle.operations = [result.ok() for result in schema.get_all_operations()]
    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=STATEFUL_SEQUENCES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    print(f"stateful schemathesis: {sum(Lifecycle.calls.values())} calls, by answer: {dict(Lifecycle.calls)}")
    assert httpx.post(f"{admin_server.url}/predict", json={"text": "still answering"}, timeout=60).is_success
