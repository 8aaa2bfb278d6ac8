"""The training pipeline, its compiled spec, and the local (kfp.local) and cluster (kfp.Client) runners."""
