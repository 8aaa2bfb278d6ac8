"""The training pipeline: ingest → preprocess → tune → (cross-validate, train) → evaluate → register → (gate)
promote → deploy.

A run the drift monitor starts also carries the report that triggered it, extra training rows (feedback) and
the labelled drift window the gate judges the challenger on."""

from kfp import dsl, kubernetes

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

# Parameter defaults are the configuration's defaults: one source for the CLI, YAML files and the spec.
D = PipelineConfig()
# What the tune step chooses: its output parameters (its return type), by name; each is also a pipeline parameter,
# the configured value tuning starts from. Its other outputs are artifacts (the study's plots).
TUNED_PARAMETERS = tuple(
    name for name, output in tune.component_spec.outputs.items() if not output.type.startswith("system.")
)


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
def training_pipeline(
    data: str = D.data,
    text_column: str = D.text_column,
    label_column: str = D.label_column,
    hf_split: str = D.hf_split,
    hf_config: str = D.hf_config,
    validation_fraction: float = D.validation_fraction,
    test_fraction: float = D.test_fraction,
    seed: int = D.seed,
    strip_html: bool = D.strip_html,
    strip_urls: bool = D.strip_urls,
    normalize_unicode: bool = D.normalize_unicode,
    normalize_whitespace: bool = D.normalize_whitespace,
    lowercase: bool = D.lowercase,
    base_model: str = D.base_model,
    max_length: int = D.max_length,
    truncation: str = D.truncation,
    predict_max_length: int = D.predict_max_length,
    finetune: str = D.finetune,
    learning_rate: float = D.learning_rate,
    batch_size: int = D.batch_size,
    epochs: int = D.epochs,
    weight_decay: float = D.weight_decay,
    warmup_ratio: float = D.warmup_ratio,
    lora_r: int = D.lora_r,
    lora_alpha: int = D.lora_alpha,
    lora_dropout: float = D.lora_dropout,
    freeze_word_embeddings: bool = D.freeze_word_embeddings,
    early_stopping_patience: int = D.early_stopping_patience,
    class_weighting: str = D.class_weighting,
    calibrate: bool = D.calibrate,
    cv_folds: int = D.cv_folds,
    behaviour_tests: str = D.behaviour_tests,
    workers: int = D.workers,
    trainjob_timeout_seconds: int = D.trainjob_timeout_seconds,
    trials: int = D.trials,
    tune_max_train_rows: int = D.tune_max_train_rows,
    tune_parallelism: int = D.tune_parallelism,
    optuna_storage: str = D.optuna_storage,
    tracking_uri: str = D.tracking_uri,
    experiment_name: str = D.experiment_name,
    registered_model_name: str = D.registered_model_name,
    min_accuracy_gain: float = D.min_accuracy_gain,
    max_class_f1_drop: float = D.max_class_f1_drop,
    require_approval: bool = D.require_approval,
    max_behaviour_failure_rate: float = D.max_behaviour_failure_rate,
    min_shadow_texts: int = D.min_shadow_texts,
    min_shadow_agreement: float = D.min_shadow_agreement,
    shadow_accuracy_win: bool = D.shadow_accuracy_win,
    serving_url: str = D.serving_url,
    serving_namespace: str = D.serving_namespace,
    inference_service_name: str = D.inference_service_name,
    serving_image: str = D.serving_image,
    artifact_store_uri: str = D.artifact_store_uri,
    request_logger_url: str = D.request_logger_url,
    shadow_model: str = D.shadow_model,
    deployment_mode: str = D.deployment_mode,
    canary_traffic_percent: int = D.canary_traffic_percent,
    min_replicas: int = D.min_replicas,
    max_replicas: int = D.max_replicas,
    autoscaler: str = D.autoscaler,
    cpu_target_utilization: int = D.cpu_target_utilization,
    keda_prometheus_url: str = D.keda_prometheus_url,
    keda_requests_per_second: float = D.keda_requests_per_second,
    deploy_timeout_seconds: int = D.deploy_timeout_seconds,
    extra_train_data: str = D.extra_train_data,
    drift_window_data: str = D.drift_window_data,
    drift_report: str = D.drift_report,
    trigger: str = D.trigger,
):
    with dsl.If(drift_report != "", name="started-by-drift"):
        _sized(attach_drift_report(drift_report=drift_report), "promote", "Drift report that started this run")
    ingested = _sized(
        ingest(
            data=data,
            text_column=text_column,
            label_column=label_column,
            hf_split=hf_split,
            hf_config=hf_config,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
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
            strip_html=strip_html,
            strip_urls=strip_urls,
            normalize_unicode=normalize_unicode,
            normalize_whitespace=normalize_whitespace,
            lowercase=lowercase,
            base_model=base_model,
            max_length=max_length,
            truncation=truncation,
            predict_max_length=predict_max_length,
            tracking_uri=tracking_uri,
            mlflow_run_id=run_id,
        ),
        "preprocess",
        "Preprocess",
    )
    # What every training step (tuning, cross-validation, training) gets alike.
    recipe_inputs = {
        "train_data": prepared.outputs["train_data"],
        "preprocessing": prepared.outputs["preprocessing"],
        "finetune": finetune,
        "freeze_word_embeddings": freeze_word_embeddings,
        "early_stopping_patience": early_stopping_patience,
        "class_weighting": class_weighting,
        "seed": seed,
    }
    shared = {
        **recipe_inputs,
        "validation_data": prepared.outputs["validation_data"],
        "tracking_uri": tracking_uri,
        "mlflow_run_id": run_id,
    }
    configured = {name: value for name, value in locals().items() if name in TUNED_PARAMETERS}
    study_inputs = {**recipe_inputs, "trials": trials, "optuna_storage": optuna_storage, **configured}
    plan = _with_study_storage(
        _sized(
            plan_tuning(
                **study_inputs, tune_parallelism=tune_parallelism, data_fingerprint=fingerprint, mlflow_run_id=run_id
            ),
            "register",
            "Tune: plan the study",
        )
    )
    # One worker per item: a pod each in a cluster, a process each under kfp.local; all share the study. The
    # items carry the study's name and the MLflow run (see plan_tuning: kfp.local's loops lose task outputs).
    with dsl.ParallelFor(plan.output, name="tuning-workers") as worker:
        trial_runners = _with_study_storage(
            _sized(
                tune_trials(
                    **study_inputs,
                    validation_data=prepared.outputs["validation_data"],
                    tune_max_train_rows=tune_max_train_rows,
                    study_name=worker.study_name,
                    worker=worker.worker,
                    tune_parallelism=tune_parallelism,
                    tracking_uri=tracking_uri,
                    mlflow_run_id=worker.mlflow_run_id,
                ),
                "tune",
                "Tune: trials (Optuna worker)",
            )
        )
    tuned = _with_study_storage(
        _sized(
            tune(**study_inputs, data_fingerprint=fingerprint, tracking_uri=tracking_uri, mlflow_run_id=run_id),
            "register",
            "Tune: best recipe",
        ).after(trial_runners)
    )
    recipe = {name: tuned.outputs[name] for name in TUNED_PARAMETERS}
    # Always runs, so evaluate has its output; with cv_folds = 0 it records that and ends at once.
    cross_validated = _sized(
        cross_validate(**shared, **recipe, cv_folds=cv_folds, validation_fraction=validation_fraction),
        "train",
        "Cross-validate (k folds)",
    )
    trained = _sized(
        train(
            **shared,
            **recipe,
            calibrate=calibrate,
            data_fingerprint=fingerprint,
            workers=workers,
            trainjob_namespace=serving_namespace,
            trainjob_timeout_seconds=trainjob_timeout_seconds,
        ),
        "train",
        "Train",
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
            behaviour_tests=behaviour_tests,
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
    gate = _sized(
        promotion_gate(
            registered_model_name=registered_model_name,
            version=registered.output,
            min_accuracy_gain=min_accuracy_gain,
            max_class_f1_drop=max_class_f1_drop,
            drift_window_data=drift_window_data,
            require_approval=require_approval,
            max_behaviour_failure_rate=max_behaviour_failure_rate,
            min_shadow_texts=min_shadow_texts,
            min_shadow_agreement=min_shadow_agreement,
            shadow_accuracy_win=shadow_accuracy_win,
            tracking_uri=tracking_uri,
            mlflow_run_id=run_id,
        ),
        "register",
        "Promotion gate",
    )
    with dsl.If(gate.output == True, name="challenger-beats-champion"):  # noqa: E712
        promoted = _sized(
            promote(
                registered_model_name=registered_model_name,
                version=registered.output,
                tracking_uri=tracking_uri,
                mlflow_run_id=run_id,
            ),
            "promote",
            "Promote to champion",
        )
        _sized(
            deploy(
                registered_model_name=registered_model_name,
                version=promoted.output,
                tracking_uri=tracking_uri,
                mlflow_run_id=run_id,
                serving_url=serving_url,
                serving_namespace=serving_namespace,
                inference_service_name=inference_service_name,
                serving_image=serving_image,
                artifact_store_uri=artifact_store_uri,
                request_logger_url=request_logger_url,
                shadow_model=shadow_model,
                deployment_mode=deployment_mode,
                canary_traffic_percent=canary_traffic_percent,
                min_replicas=min_replicas,
                max_replicas=max_replicas,
                autoscaler=autoscaler,
                cpu_target_utilization=cpu_target_utilization,
                keda_prometheus_url=keda_prometheus_url,
                keda_requests_per_second=keda_requests_per_second,
                deploy_timeout_seconds=deploy_timeout_seconds,
            ),
            "deploy",
            "Deploy (InferenceService / local server)",
        )
