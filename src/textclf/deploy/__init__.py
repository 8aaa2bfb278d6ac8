"""The deploy stage's decisions, free of Kubernetes and KServe imports: where KServe reads the champion from,
how a rollout proceeds, how a local server switches to a new champion; and the cluster resources generated
from the chart (`python -m textclf.deploy.manifests`)."""
