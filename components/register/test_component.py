from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import dsl
from kfp.dsl import Artifact, Model

pytestmark = pytest.mark.component


class Outputs(NamedTuple):
    version: str
    promote: bool


def register_gate_promote(step_inputs: dict, name: str, max_class_f1_drop: float):
    """A pipeline of the training pipeline's last steps for the fixture model: register it with an evaluation,
    gate it against the champion (no window, no approval, no shadow), and promote it when the gate passes."""
    from textclf.components.register.component import promote, promotion_gate, register

    @dsl.pipeline
    def pipeline(evaluation_uri: str, run_id: str) -> Outputs:
        common = {"tracking_uri": step_inputs["tracking_uri"], "mlflow_run_id": run_id}
        registered = register(
            model=dsl.importer(artifact_uri=str(step_inputs["model"]), artifact_class=Model).output,
            evaluation=dsl.importer(artifact_uri=evaluation_uri, artifact_class=Artifact).output,
            registered_model_name=name,
            data_fingerprint=step_inputs["fingerprint"],
            **common,
        )
        gate = promotion_gate(
            registered_model_name=name,
            version=registered.output,
            promotion={"max_class_f1_drop": max_class_f1_drop},
            drift_window_data="",
            **common,
        )
        with dsl.If(gate.output == True):  # noqa: E712
            promote(registered_model_name=name, version=registered.output, **common)
        return Outputs(registered.output, gate.output)

    return pipeline


def test_register_gate_and_promote_run_under_kfp_local(kfp_local: Path, step_inputs: dict, fresh_run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    pipeline = register_gate_promote(step_inputs, "component-test", max_class_f1_drop=0.05)

    def register_then_gate() -> dict:
        return pipeline(evaluation_uri=str(step_inputs["evaluation"]), run_id=fresh_run_id).outputs

    first = register_then_gate()
    assert first == {"version": "1", "promote": True}
    client = MlflowClient(step_inputs["tracking_uri"], step_inputs["tracking_uri"])
    champion = client.get_model_version_by_alias("component-test", "champion")
    assert str(champion.version) == "1"
    assert str(client.get_model_version_by_alias("component-test", "challenger").version) == "1"
    assert champion.tags["data_fingerprint"] == step_inputs["fingerprint"]
    assert {"test_accuracy", "test_per_class_f1", "git_commit", "param.learning_rate"} <= set(champion.tags)

    # The same run registered again: no second version, and the champion is not promoted over itself.
    assert register_then_gate() == {"version": "1", "promote": False}
    assert len(client.search_model_versions("name = 'component-test'")) == 1


def test_after_drift_the_gate_judges_both_models_on_the_labelled_window(
    kfp_local: Path, step_inputs: dict, fresh_run_id: str, tmp_path: Path
) -> None:
    """A challenger better on the frozen test split but not on the drift window stays challenger."""
    import json

    import pandas as pd
    from mlflow.tracking import MlflowClient

    from textclf.components.register.component import promotion_gate, register

    name = "window-gate-test"
    client = MlflowClient(step_inputs["tracking_uri"], step_inputs["tracking_uri"])

    @dsl.pipeline
    def register_model(evaluation_uri: str, run_id: str) -> str:
        return register(
            model=dsl.importer(artifact_uri=str(step_inputs["model"]), artifact_class=Model).output,
            evaluation=dsl.importer(artifact_uri=evaluation_uri, artifact_class=Artifact).output,
            registered_model_name=name,
            data_fingerprint=step_inputs["fingerprint"],
            tracking_uri=step_inputs["tracking_uri"],
            mlflow_run_id=run_id,
        ).output

    champion = register_model(evaluation_uri=str(step_inputs["evaluation"]), run_id=fresh_run_id).output
    client.set_registered_model_alias(name, "champion", champion)
    better = json.loads(step_inputs["evaluation"].read_text())
    better["test"]["accuracy"] += 0.1
    evaluation = tmp_path / "better.json"
    evaluation.write_text(json.dumps(better))
    second_run = client.create_run(client.get_run(fresh_run_id).info.experiment_id).info.run_id
    challenger = register_model(evaluation_uri=str(evaluation), run_id=second_run).output
    assert challenger != champion
    window = tmp_path / "window.csv"
    pd.DataFrame({"text": ["lol gr8 #winning", "ugh mondays"], "label": ["positive", "negative"]}).to_csv(
        window, index=False
    )
    policy = {"min_accuracy_gain": 0.0, "max_class_f1_drop": 1.0}
    gate = {"registered_model_name": name, "version": challenger, "promotion": policy}
    assert promotion_gate(
        **gate, drift_window_data="", tracking_uri=step_inputs["tracking_uri"], mlflow_run_id=second_run
    ).output
    # With a shadow window the same passing challenger waits for it, and its version records the conditions.
    shadowed = {**gate, "promotion": {**policy, "min_shadow_texts": 100, "min_shadow_agreement": 0.9}}
    assert not promotion_gate(
        **shadowed, drift_window_data="", tracking_uri=step_inputs["tracking_uri"], mlflow_run_id=second_run
    ).output
    assert client.get_run(second_run).data.tags["promotion_decision"] == "awaiting_shadow"
    recorded = json.loads(client.get_model_version(name, challenger).tags["shadow_policy"])
    assert recorded == {"min_shadow_texts": 100, "min_shadow_agreement": 0.9, "shadow_accuracy_win": False}
    # The fixture's evaluation ran the built-in sentiment suite; its worst test's failure rate is on the version.
    worst = float(client.get_model_version(name, challenger).tags["test_behaviour_max_failure_rate"])
    strict = {**gate, "promotion": {**policy, "max_behaviour_failure_rate": worst / 2}}
    assert promotion_gate(
        **strict, drift_window_data="", tracking_uri=step_inputs["tracking_uri"], mlflow_run_id=second_run
    ).output == (worst == 0)
    # The same weights score the same on the window: no gain there, so no promotion.
    assert not promotion_gate(
        **gate, drift_window_data=str(window), tracking_uri=step_inputs["tracking_uri"], mlflow_run_id=second_run
    ).output
    tags = client.get_run(second_run).data.tags
    assert "drift-window accuracy" in tags["promotion_reason"]
    metrics = client.get_run(second_run).data.metrics
    assert metrics["drift_window_accuracy"] == metrics["drift_window_champion_accuracy"]


def test_a_strictly_worse_challenger_is_refused_and_the_champion_keeps_its_alias(
    kfp_local: Path, step_inputs: dict, fresh_run_id: str, tmp_path: Path
) -> None:
    """Issue 33: the gate was shown refusing only an equal model or the same weights. Here the second version's
    evaluation is worse on accuracy and on every class, through the registry the steps use."""
    import json

    from mlflow.tracking import MlflowClient

    name = "worse-challenger-test"
    client = MlflowClient(step_inputs["tracking_uri"], step_inputs["tracking_uri"])
    worse = json.loads(step_inputs["evaluation"].read_text())
    worse["test"]["accuracy"] -= 0.1
    for scores in worse["test"]["per_class"].values():
        scores["f1"] = max(0.0, scores["f1"] - 0.1)
    worse_evaluation = tmp_path / "worse.json"
    worse_evaluation.write_text(json.dumps(worse))

    pipeline = register_gate_promote(step_inputs, name, max_class_f1_drop=1.0)

    first = pipeline(evaluation_uri=str(step_inputs["evaluation"]), run_id=fresh_run_id).outputs
    assert first == {"version": "1", "promote": True}
    second_run = client.create_run(client.get_run(fresh_run_id).info.experiment_id).info.run_id
    second = pipeline(evaluation_uri=str(worse_evaluation), run_id=second_run).outputs
    assert second == {"version": "2", "promote": False}
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    tags = client.get_run(second_run).data.tags
    assert tags["promotion_decision"] == "keep_champion" and "accuracy" in tags["promotion_reason"]
