"""The pipeline's steps, one module each: read inputs from paths, call the stage packages, write outputs, log
to the pipeline's MLflow run. The KFP components in `components/` are thin adapters over these, so a step runs
the same in a test, under kfp.local and in a container."""
