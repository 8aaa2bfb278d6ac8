from kfp.dsl import Artifact, Dataset, Input, Model, Output

from textclf.components import textclf_component


@textclf_component
def train(
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    preprocessing: Input[Artifact],
    training: dict,
    seed: int,
    data_fingerprint: str,
    distributed: dict,
    namespace: str,
    tracking_uri: str,
    mlflow_run_id: str,
    model: Output[Model],
) -> float:
    """Fine-tune with the chosen recipe; output the serving-ready model directory."""
    import os
    import tempfile
    from functools import partial
    from pathlib import Path

    from textclf.registry.tracking import resume_run
    from textclf.steps.train import run_train
    from textclf.train.distributed import DistributedConfig
    from textclf.train.trainer import TrainingParams

    parallel = DistributedConfig.model_validate(distributed)
    cluster_trainer = None
    if parallel.workers > 1 and os.environ.get("KUBERNETES_SERVICE_HOST"):
        from textclf.components.train.trainjob import train_on_trainjob

        cluster_trainer = partial(
            train_on_trainjob,
            workers=parallel.workers,
            namespace=namespace,
            tracking_uri=tracking_uri,
            timeout_seconds=parallel.trainjob_timeout_seconds,
        )
    with resume_run(tracking_uri, mlflow_run_id), tempfile.TemporaryDirectory() as work_dir:
        summary = run_train(
            Path(train_data.path),
            Path(validation_data.path),
            Path(preprocessing.path),
            TrainingParams.of(training, seed),
            data_fingerprint,
            Path(work_dir),
            Path(model.path),
            parallel.workers,
            cluster_trainer,
        )
    model.metadata.update({"framework": "transformers", **summary})
    return float(summary["validation_accuracy"])
