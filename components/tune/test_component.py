from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset

pytestmark = pytest.mark.component


class Outputs(NamedTuple):
    epochs: int
    learning_rate: float
    history: HTML


def test_tune_runs_under_kfp_local(kfp_local: Path, step_inputs: dict, fresh_run_id: str, tmp_path: Path) -> None:
    from textclf.components.tune.component import tune

    prepared = step_inputs["prepared"]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"

    @dsl.pipeline
    def only_tune() -> Outputs:
        task = tune(
            train_data=dsl.importer(artifact_uri=str(prepared["train"]), artifact_class=Dataset).output,
            validation_data=dsl.importer(artifact_uri=str(prepared["validation"]), artifact_class=Dataset).output,
            preprocessing=dsl.importer(artifact_uri=str(step_inputs["preprocessing"]), artifact_class=Artifact).output,
            finetune="lora",
            class_weighting="auto",
            learning_rate=0.0,
            batch_size=8,
            epochs=2,
            weight_decay=0.0,
            warmup_ratio=0.0,
            lora_r=4,
            lora_alpha=8,
            lora_dropout=0.0,
            freeze_word_embeddings=True,
            early_stopping_patience=1,
            seed=0,
            trials=2,
            tune_max_train_rows=30,
            optuna_storage=storage,
            data_fingerprint=step_inputs["fingerprint"],
            tracking_uri=step_inputs["tracking_uri"],
            mlflow_run_id=fresh_run_id,
        )
        return Outputs(task.outputs["epochs"], task.outputs["learning_rate"], task.outputs["optimization_history"])

    outputs = only_tune().outputs
    assert 1 <= outputs["epochs"] <= 2
    assert 1e-4 <= outputs["learning_rate"] <= 2e-3
    assert "plotly" in Path(outputs["history"].path).read_text()

    import optuna

    studies = optuna.get_all_study_summaries(storage)
    assert len(studies) == 1 and studies[0].n_trials == 2
