from pathlib import Path
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Model


class Outputs(NamedTuple):
    version: str
    promote: bool


def test_register_gate_and_promote_run_under_kfp_local(kfp_local: Path, step_inputs: dict, fresh_run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    from textclf.components.register.component import promote, promotion_gate, register

    common = {"tracking_uri": step_inputs["tracking_uri"], "mlflow_run_id": fresh_run_id}

    @dsl.pipeline
    def register_then_gate() -> Outputs:
        registered = register(
            model=dsl.importer(artifact_uri=str(step_inputs["model"]), artifact_class=Model).output,
            evaluation=dsl.importer(artifact_uri=str(step_inputs["evaluation"]), artifact_class=Artifact).output,
            registered_model_name="component-test",
            data_fingerprint=step_inputs["fingerprint"],
            **common,
        )
        gate = promotion_gate(
            registered_model_name="component-test",
            version=registered.output,
            min_accuracy_gain=0.0,
            max_class_f1_drop=0.05,
            **common,
        )
        with dsl.If(gate.output == True):  # noqa: E712
            promote(registered_model_name="component-test", version=registered.output, **common)
        return Outputs(registered.output, gate.output)

    first = register_then_gate().outputs
    assert first == {"version": "1", "promote": True}
    client = MlflowClient(step_inputs["tracking_uri"], step_inputs["tracking_uri"])
    champion = client.get_model_version_by_alias("component-test", "champion")
    assert str(champion.version) == "1"
    assert str(client.get_model_version_by_alias("component-test", "challenger").version) == "1"
    assert champion.tags["data_fingerprint"] == step_inputs["fingerprint"]
    assert {"test_accuracy", "test_per_class_f1", "git_commit", "param.learning_rate"} <= set(champion.tags)

    # The same run registered again: no second version, and the champion is not promoted over itself.
    assert register_then_gate().outputs == {"version": "1", "promote": False}
    assert len(client.search_model_versions("name = 'component-test'")) == 1
