"""The train step's TrainJob (workers > 1 in a cluster): the resource validates against Kubeflow Trainer's own
API models, the wait ends on the job's conditions, and the Makefile installs the pinned Trainer (the Role that
lets the pipeline manage TrainJobs is checked with the rest of the RBAC in tests/unit/test_manifests.py)."""

import re
from pathlib import Path

import pytest

from textclf.components.train.trainjob import (
    TrainJobFailed,
    build_trainjob,
    trainjob_outcome,
    wait_for_trainjob,
)
from textclf.names import COMPONENTS_IMAGE, STEP_RESOURCES

pytestmark = pytest.mark.unit

REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_trainjob_validates_against_kubeflow_trainers_models_and_runs_the_entry_point() -> None:
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    manifest = build_trainjob(
        "textclf-train-1", "textclf", 4, "http://mlflow:5000", "abc123", "distributed/x", timeout_seconds=3600
    )
    parsed = TrainerV1alpha1TrainJob.from_dict(manifest)
    assert parsed.to_dict() == manifest, "every field is one the TrainJob API knows"
    trainer = manifest["spec"]["trainer"]
    assert manifest["spec"]["runtimeRef"]["name"] == "torch-distributed"
    assert (trainer["numNodes"], trainer["numProcPerNode"], trainer["image"]) == (4, 1, COMPONENTS_IMAGE)
    # torchrun takes nodes, rank and master from the PET_* variables the runtime's torch plugin sets.
    assert trainer["command"][:3] == ["torchrun", "-m", "textclf.train.distributed"]
    assert not any(argument.startswith("--nnodes") or argument.startswith("--rdzv") for argument in trainer["command"])
    assert trainer["resourcesPerNode"]["limits"]["cpu"] == STEP_RESOURCES["train"].cpu_limit
    assert manifest["spec"]["activeDeadlineSeconds"] == 3600


def _job(condition: str | None, message: str = "") -> dict:
    conditions = [] if condition is None else [{"type": condition, "status": "True", "reason": "X", "message": message}]
    return {"status": {"conditions": [{"type": "Created", "status": "True"}, *conditions]}}


class FakeApi:
    def __init__(self, states: list[dict]):
        self.states = states
        self.deleted: list[str] = []

    def create(self, namespace: str, body: dict) -> dict:
        return body

    def get(self, namespace: str, name: str) -> dict:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def delete(self, namespace: str, name: str) -> None:
        self.deleted.append(name)


def test_the_wait_ends_when_the_job_completes() -> None:
    api = FakeApi([_job(None), _job(None), _job("Complete")])
    wait_for_trainjob(api, "textclf", "job", timeout_seconds=60, poll_seconds=0, sleep=lambda _: None)
    assert api.states == [_job("Complete")] and not api.deleted


def test_a_failed_job_fails_the_step_with_its_reason() -> None:
    api = FakeApi([_job(None), _job("Failed", "node-0 exited with code 1")])
    with pytest.raises(TrainJobFailed, match="node-0 exited with code 1"):
        wait_for_trainjob(api, "textclf", "job", timeout_seconds=60, poll_seconds=0, sleep=lambda _: None)
    assert trainjob_outcome(_job("Failed", "oom")) == ("Failed", "X: oom")


def test_a_job_past_its_time_is_deleted_and_fails_the_step() -> None:
    now = iter(range(0, 1000, 30))
    api = FakeApi([_job(None)])
    with pytest.raises(TrainJobFailed, match="did not finish within 60 s"):
        wait_for_trainjob(api, "textclf", "job", 60, poll_seconds=0, clock=lambda: next(now), sleep=lambda _: None)
    assert api.deleted == ["job"]


def test_the_makefile_installs_the_pinned_trainer_and_its_runtimes() -> None:
    makefile = (REPOSITORY / "Makefile").read_text()
    assert re.search(r"^TRAINER_VERSION \?= v2\.3\.0$", makefile, re.M)
    for overlay in ("manager", "runtimes"):
        assert f"github.com/kubeflow/trainer.git/manifests/overlays/{overlay}?ref=$(TRAINER_VERSION)" in makefile
