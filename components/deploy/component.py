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
    shadow_model: str,
    deployment_mode: str,
    canary_traffic_percent: int,
    min_replicas: int,
    max_replicas: int,
    autoscaler: str,
    cpu_target_utilization: int,
    keda_prometheus_url: str,
    keda_requests_per_second: float,
    deploy_timeout_seconds: int,
) -> str:
    """Serve the new champion: roll out its InferenceService on a cluster (the previous revision serves until
    the new one has rolled out; a canary first in Knative mode; the previous spec applied again on failure), or
    switch a running local `textclf serve` to it without a restart.

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
        shadow_model: cluster runs: a model the predictor also runs on each request, off the response path
            (models:/NAME@challenger); empty = none.
        deployment_mode: cluster runs: KServe's mode; Standard rolls pods over, Knative canaries.
        canary_traffic_percent: Knative mode: traffic share of a new revision until it is Ready.
        min_replicas: cluster runs: fewest predictor replicas.
        max_replicas: cluster runs: most predictor replicas.
        autoscaler: Standard mode: 'hpa' (CPU), 'keda' (request rate from Prometheus) or 'none'.
        cpu_target_utilization: autoscaler hpa: average CPU use, in % of the request, to scale at.
        keda_prometheus_url: autoscaler keda: the Prometheus server KEDA queries.
        keda_requests_per_second: autoscaler keda: inference requests per second one replica should take.
        deploy_timeout_seconds: how long a rollout may take to become Ready.
    """
    import os
    from functools import partial

    from textclf.registry.tracking import resume_run
    from textclf.steps.deploy import run_deploy

    on_cluster = None
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        from textclf.deploy.rollout import ServingPlan
        from textclf.serving.inference_service import deploy_to_cluster

        plan = ServingPlan(
            deployment_mode=deployment_mode,
            canary_traffic_percent=canary_traffic_percent,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            autoscaler=autoscaler,
            cpu_target_utilization=cpu_target_utilization,
            keda_prometheus_url=keda_prometheus_url,
            keda_requests_per_second=keda_requests_per_second,
        )
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
            plan,
            deploy_timeout_seconds,
            shadow_model,
        )
    with resume_run(tracking_uri, mlflow_run_id):
        outcome = run_deploy(registered_model_name, version, serving_url, tracking_uri, on_cluster)
    print(outcome)
    return outcome
