"""The training pipeline: ingest → preprocess → tune → (cross-validate, train) → evaluate → register → (gate)
promote → deploy.

A run the drift monitor starts also carries the report that triggered it, extra training rows (feedback) and
the labelled drift window the gate judges the challenger on."""

from kfp import dsl, kubernetes

from textclf.components import every_argument_described
from textclf.components.cross_validate.component import cross_validate
from textclf.components.deploy.component import deploy
from textclf.components.drift_report.component import attach_drift_report
from textclf.components.evaluate.component import evaluate
from textclf.components.ingest.component import ingest
from textclf.components.preprocess.component import preprocess
from textclf.components.register.component import promote, promotion_gate, register
from textclf.components.train.component import train
from textclf.components.tune.component import plan_tuning, tune, tune_trials
from textclf.config import PipelineConfig
from textclf.names import OPTUNA_STORAGE_MOUNT, OPTUNA_STORAGE_SECRET, PIPELINE_NAME, STEP_RESOURCES

# Parameter defaults are the configuration's defaults: one source for the CLI, YAML files and the spec. A group's
# default is its fields' defaults, as a dict.
D = PipelineConfig().parameters()


def _sized(task: dsl.PipelineTask, step: str, display_name: str) -> dsl.PipelineTask:
    resources = STEP_RESOURCES[step]
    return (
        task.set_display_name(display_name)
        .set_cpu_request(resources.cpu_request)
        .set_cpu_limit(resources.cpu_limit)
        .set_memory_request(resources.memory_request)
        .set_memory_limit(resources.memory_limit)
    )


def _with_study_storage(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Mount the Secret naming the study's shared storage where it exists (an explicit optuna_storage wins)."""
    return kubernetes.use_secret_as_volume(
        task, secret_name=OPTUNA_STORAGE_SECRET, mount_path=OPTUNA_STORAGE_MOUNT, optional=True
    )


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Fine-tune a transformer text classifier, evaluate it against baselines, register it in "
    "MLflow and promote it to champion when it beats the current one.",
)
@every_argument_described
def training_pipeline(
    data: str = D["data"],
    seed: int = D["seed"],
    dataset: dict = D["dataset"],
    cleaning: dict = D["cleaning"],
    encoder: dict = D["encoder"],
    training: dict = D["training"],
    tuning: dict = D["tuning"],
    distributed: dict = D["distributed"],
    checks: dict = D["checks"],
    promotion: dict = D["promotion"],
    serving: dict = D["serving"],
    tracking_uri: str = D["tracking_uri"],
    experiment_name: str = D["experiment_name"],
    registered_model_name: str = D["registered_model_name"],
    namespace: str = D["namespace"],
    extra_train_data: str = D["extra_train_data"],
    drift_window_data: str = D["drift_window_data"],
    drift_report: str = D["drift_report"],
    trigger: str = D["trigger"],
):
    """The training pipeline; each parameter is a `PipelineConfig` field (`textclf.config`), each group a JSON
    object of its fields."""
    with dsl.If(drift_report != "", name="started-by-drift"):
        _sized(attach_drift_report(drift_report=drift_report), "promote", "Drift report that started this run")
    ingested = _sized(
        ingest(
            data=data,
            dataset=dataset,
            seed=seed,
            tracking_uri=tracking_uri,
            experiment_name=experiment_name,
            run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            extra_train_data=extra_train_data,
            trigger=trigger,
        ),
        "ingest",
        "Ingest",
    )
    # A cached ingest would hand later steps the MLflow run of an earlier pipeline run.
    ingested.set_caching_options(False)
    run_id = ingested.outputs["mlflow_run_id"]
    fingerprint = ingested.outputs["data_fingerprint"]
    prepared = _sized(
        preprocess(
            train_split=ingested.outputs["train_split"],
            validation_split=ingested.outputs["validation_split"],
            test_split=ingested.outputs["test_split"],
            cleaning=cleaning,
            encoder=encoder,
            tracking_uri=tracking_uri,
            mlflow_run_id=run_id,
        ),
        "preprocess",
        "Preprocess",
    )
    splits = {"train_data": prepared.outputs["train_data"], "preprocessing": prepared.outputs["preprocessing"]}
    study = {**splits, "training": training, "seed": seed, "tuning": tuning}
    plan = _with_study_storage(
        _sized(
            plan_tuning(**study, data_fingerprint=fingerprint, mlflow_run_id=run_id), "register", "Tune: plan the study"
        )
    )
    # One worker per item: a pod each in a cluster, a process each under kfp.local; all share the study. The
    # items carry the study's name and the MLflow run (see plan_tuning: kfp.local's loops lose task outputs).
    with dsl.ParallelFor(plan.output, name="tuning-workers") as worker:
        trial_runners = _with_study_storage(
            _sized(
                tune_trials(
                    **study,
                    validation_data=prepared.outputs["validation_data"],
                    study_name=worker.study_name,
                    worker=worker.worker,
                    tracking_uri=tracking_uri,
                    mlflow_run_id=worker.mlflow_run_id,
                ),
                "tune",
                "Tune: trials (Optuna worker)",
            )
        )
    tuned = _with_study_storage(
        _sized(
            tune(**study, data_fingerprint=fingerprint, tracking_uri=tracking_uri, mlflow_run_id=run_id),
            "register",
            "Tune: best recipe",
        ).after(trial_runners)
    )
    # What cross-validation and training get alike: the tuned recipe on the prepared splits.
    recipe = {
        **splits,
        "validation_data": prepared.outputs["validation_data"],
        "training": tuned.outputs["Output"],
        "seed": seed,
        "tracking_uri": tracking_uri,
        "mlflow_run_id": run_id,
    }
    # Always runs, so evaluate has its output; with cv_folds = 0 it records that and ends at once.
    cross_validated = _sized(
        cross_validate(**recipe, checks=checks, dataset=dataset), "train", "Cross-validate (k folds)"
    )
    trained = _sized(
        train(**recipe, data_fingerprint=fingerprint, distributed=distributed, namespace=namespace), "train", "Train"
    )
    evaluated = _sized(
        evaluate(
            model=trained.outputs["model"],
            train_split=ingested.outputs["train_split"],
            test_data=prepared.outputs["test_data"],
            cross_validation=cross_validated.outputs["cross_validation"],
            data=data,
            data_fingerprint=fingerprint,
            registered_model_name=registered_model_name,
            split_sizes=ingested.outputs["split_sizes"],
            seed=seed,
            checks=checks,
            tracking_uri=tracking_uri,
            mlflow_run_id=run_id,
        ),
        "evaluate",
        "Evaluate",
    )
    registered = _sized(
        register(
            model=trained.outputs["model"],
            evaluation=evaluated.outputs["evaluation"],
            registered_model_name=registered_model_name,
            data_fingerprint=fingerprint,
            tracking_uri=tracking_uri,
            mlflow_run_id=run_id,
        ),
        "register",
        "Register (challenger)",
    )
    version = {"registered_model_name": registered_model_name, "tracking_uri": tracking_uri, "mlflow_run_id": run_id}
    gate = _sized(
        promotion_gate(**version, version=registered.output, promotion=promotion, drift_window_data=drift_window_data),
        "register",
        "Promotion gate",
    )
    with dsl.If(gate.output == True, name="challenger-beats-champion"):  # noqa: E712
        promoted = _sized(promote(**version, version=registered.output), "promote", "Promote to champion")
        _sized(
            deploy(**version, version=promoted.output, serving=serving, namespace=namespace),
            "deploy",
            "Deploy (InferenceService / local server)",
        )
