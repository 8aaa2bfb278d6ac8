"""The chart's Role for the pipeline's ServiceAccount, checked against the calls the cluster code really makes.

The deploy step's rollout and the train step's TrainJobs run through their own Kubernetes clients against an
in-memory API server (tests/support/fake_kubernetes.py) that records each call as the RBAC request it is; the
chart must grant every one of them in the serving namespace. Under that Role, enforced as the API server's
authorizer would, each rollout succeeds; and a rollout whose watch fails restores the previous spec.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_kubernetes import ApiCall, FakeKubernetes, fake_kubernetes, rules_allow
from textclf.deploy.manifests import render_chart
from textclf.deploy.rollout import DeployError
from textclf.names import PIPELINE_NAMESPACE, PIPELINE_SERVICE_ACCOUNT, SERVING_NAMESPACE

pytestmark = pytest.mark.integration

NAME = "textclf"


def pipeline_rules() -> list[dict]:
    """The rules of every Role the chart binds to the pipeline's ServiceAccount in the serving namespace."""
    documents = render_chart()
    roles = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Role"}
    bound = [
        d["roleRef"]["name"]
        for d in documents
        if d["kind"] == "RoleBinding"
        and {"kind": "ServiceAccount", "name": PIPELINE_SERVICE_ACCOUNT, "namespace": PIPELINE_NAMESPACE}
        in d["subjects"]
    ]
    assert bound, "the chart binds no Role to the pipeline's ServiceAccount"
    return [rule for name in bound for rule in roles[name]["rules"]]


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    """The fake API server, which the cluster code's in-cluster configuration points at."""
    from kubernetes import client, config

    with fake_kubernetes() as fake:

        def in_cluster() -> None:
            configuration = client.Configuration()
            configuration.host = fake.url
            client.Configuration.set_default(configuration)

        monkeypatch.setattr(config, "load_incluster_config", in_cluster)
        yield fake


class FakeClock:
    """Rollout deadlines without waiting: every sleep moves time on."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def settings(version: str):
    from textclf.serving.inference_service import InferenceServiceSettings

    return InferenceServiceSettings(NAME, SERVING_NAMESPACE, f"s3://mlflow/1/models/m-{version}/artifacts", version)


def roll_out(version: str, timeout_seconds: int = 60) -> str:
    from textclf.serving.inference_service import KubernetesApi
    from textclf.serving.inference_service import roll_out as cluster_roll_out

    clock = FakeClock()
    return cluster_roll_out(KubernetesApi(), settings(version), timeout_seconds, clock, clock.sleep)


def served_storage_uri(cluster: FakeKubernetes) -> str | None:
    from textclf.serving.inference_service import serving_storage_uri

    collection = f"apis/serving.kserve.io/v1beta1/namespaces/{SERVING_NAMESPACE}/inferenceservices"
    return serving_storage_uri(cluster.stored(collection, NAME))


def every_cluster_path(cluster: FakeKubernetes) -> None:
    """Each way the cluster code talks to Kubernetes: a first rollout, a new version rolled over it, a rollout
    that never completes (the previous spec is applied again), a TrainJob that completes and one that runs past
    its deadline (deleted)."""
    from textclf.components.train.trainjob import (
        KubernetesTrainJobApi,
        TrainJobFailed,
        build_trainjob,
        wait_for_trainjob,
    )

    roll_out("1")
    roll_out("2")
    cluster.deployments_roll_out = False
    with pytest.raises(DeployError, match="applied again"):
        roll_out("3", timeout_seconds=30)
    cluster.deployments_roll_out = True
    trainjobs = KubernetesTrainJobApi()
    for index, completes in enumerate((True, False)):
        cluster.trainjobs_complete = completes
        name = f"textclf-train-{index}"
        trainjobs.create(SERVING_NAMESPACE, build_trainjob(name, SERVING_NAMESPACE, 2, "http://mlflow:5000", "r", "a"))
        clock = FakeClock()
        if completes:
            wait_for_trainjob(trainjobs, SERVING_NAMESPACE, name, 60, clock=clock, sleep=clock.sleep)
        else:
            with pytest.raises(TrainJobFailed, match="deleted"):
                wait_for_trainjob(trainjobs, SERVING_NAMESPACE, name, 60, clock=clock, sleep=clock.sleep)


def test_the_chart_grants_every_kubernetes_call_the_cluster_code_makes(cluster: FakeKubernetes) -> None:
    every_cluster_path(cluster)
    rules = pipeline_rules()
    made = sorted(set(cluster.calls), key=lambda c: (c.group, c.resource, c.verb))
    assert {(c.group, c.resource) for c in made} >= {
        ("serving.kserve.io", "inferenceservices"),
        ("apps", "deployments"),
        ("trainer.kubeflow.org", "trainjobs"),
    }
    assert {c.namespace for c in made} == {SERVING_NAMESPACE}
    refused = [f"{c.verb} {c.group or 'core'}/{c.resource}" for c in made if not rules_allow(rules, c)]
    assert not refused, f"the chart's Role for {PIPELINE_SERVICE_ACCOUNT} does not grant: {refused}"


def test_every_cluster_path_succeeds_under_the_charts_role(cluster: FakeKubernetes) -> None:
    cluster.granted = pipeline_rules()
    every_cluster_path(cluster)
    assert served_storage_uri(cluster) == settings("2").storage_uri


def test_a_rollout_whose_watch_fails_restores_the_previous_spec(cluster: FakeKubernetes) -> None:
    roll_out("1")
    cluster.failing_reads = {"deployments"}
    with pytest.raises(
        DeployError,
        match=r"watching the rollout failed: the Kubernetes API answered 500 InternalError: reading deployments "
        r"failed; the previous spec \(model version 1\) was applied again",
    ):
        roll_out("2")
    assert served_storage_uri(cluster) == settings("1").storage_uri


def test_a_rollout_refused_by_rbac_restores_the_previous_spec(cluster: FakeKubernetes) -> None:
    """The landed Role's gap, reproduced: the Deployment cannot be read, and the spec must not stay half-done."""
    roll_out("1")
    cluster.granted = [rule for rule in pipeline_rules() if "deployments" not in rule["resources"]]
    with pytest.raises(DeployError, match='403 Forbidden: cannot get resource "deployments" in API group "apps"'):
        roll_out("2")
    assert served_storage_uri(cluster) == settings("1").storage_uri
    assert ApiCall("get", "apps", "deployments", SERVING_NAMESPACE, f"{NAME}-predictor") in cluster.calls
