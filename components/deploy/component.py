from textclf.components import textclf_component


@textclf_component
def deploy(
    registered_model_name: str,
    version: str,
    serving: dict,
    namespace: str,
    tracking_uri: str,
    mlflow_run_id: str,
) -> str:
    """Serve the new champion: roll out its InferenceService on a cluster (the previous revision serves until
    the new one has rolled out; a canary first in Knative mode; the previous spec applied again on failure), or
    switch a running local `textclf serve` to it without a restart."""
    import os
    from functools import partial

    from textclf.deploy.rollout import DeployConfig
    from textclf.registry.tracking import resume_run
    from textclf.steps.deploy import run_deploy

    target = DeployConfig.model_validate(serving)
    on_cluster = None
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        from textclf.serving.inference_service import deploy_to_cluster

        on_cluster = partial(
            deploy_to_cluster,
            registered_model_name,
            version,
            tracking_uri,
            namespace,
            target.inference_service_name,
            target.image,
            target.artifact_store_uri,
            target.request_logger_url,
            target.plan(),
            target.timeout_seconds,
            target.shadow_model,
        )
    with resume_run(tracking_uri, mlflow_run_id):
        outcome = run_deploy(registered_model_name, version, target.url, tracking_uri, on_cluster)
    print(outcome)
    return outcome
