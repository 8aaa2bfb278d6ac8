from textclf.components import textclf_component


@textclf_component
def deploy(
    registered_model_name: str,
    version: str,
    tracking_uri: str,
    mlflow_run_id: str,
    serving_url: str,
    serving_namespace: str,
    inference_service_name: str,
    serving_image: str,
    artifact_store_uri: str,
    request_logger_url: str,
    canary_traffic_percent: int,
    deploy_timeout_seconds: int,
) -> str:
    """Serve the new champion: roll out its InferenceService on a cluster (canary first, previous revision
    kept until Ready), or switch a running local `textclf serve` to it without a restart.

    Args:
        registered_model_name: MLflow registered model.
        version: the registered version this step acts on.
        tracking_uri: MLflow URI; empty = MLFLOW_TRACKING_URI or ./mlflow.db.
        mlflow_run_id: the pipeline's MLflow run, opened by ingest; this step logs into it.
        serving_url: local runs: the textclf server to switch to a new champion.
        serving_namespace: cluster runs: namespace of the InferenceService.
        inference_service_name: cluster runs: InferenceService name.
        serving_image: cluster runs: the predictor's image.
        artifact_store_uri: cluster runs: the MLflow server's --artifacts-destination, for KServe.
        request_logger_url: cluster runs: where KServe logs requests.
        canary_traffic_percent: traffic share of a new revision at first.
        deploy_timeout_seconds: how long a rollout may take to become Ready.
    """
    import os
    from functools import partial

    from textclf.registry.tracking import resume_run
    from textclf.steps.deploy import run_deploy

    on_cluster = None
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        from textclf.serving.inference_service import deploy_to_cluster

        on_cluster = partial(
            deploy_to_cluster,
            registered_model_name,
            version,
            tracking_uri,
            serving_namespace,
            inference_service_name,
            serving_image,
            artifact_store_uri,
            request_logger_url,
            canary_traffic_percent,
            deploy_timeout_seconds,
        )
    with resume_run(tracking_uri, mlflow_run_id):
        outcome = run_deploy(registered_model_name, version, serving_url, tracking_uri, on_cluster)
    print(outcome)
    return outcome
