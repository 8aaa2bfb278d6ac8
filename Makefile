# textclf: every target is idempotent; `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_MARKERS ?= not cluster
PYTEST_ARGS ?=
SERVE_ARGS ?=
MONITOR_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run serve monitor demo-drift test lint format compile bench bench-train bench-serve bench-drift clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/textclf: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/textclf ## create .venv and install textclf with its test tools (CPU PyTorch)

run: install ## install, then run the whole training pipeline on the embedded demo data (kfp.local)
	$(BIN)/textclf run

serve: install ## serve the champion (models:/textclf@champion) on 127.0.0.1:8080 (v1, v2 REST, gRPC :8081)
	$(BIN)/textclf serve $(SERVE_ARGS)

monitor: install ## the monitoring service on 127.0.0.1:8000 (request-log sink, feedback, drift checks)
	$(BIN)/textclf monitor $(MONITOR_ARGS)

demo-drift: install ## the whole loop locally: train, serve, drift, one retraining run, promotion if better
	$(BIN)/textclf demo-drift --workdir demo-drift

test: install ## lint, then every test that can run without a cluster
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -m "$(PYTEST_MARKERS)" $(PYTEST_ARGS)

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

compile: install ## recompile the committed pipeline spec (pipelines/compiled/)
	$(BIN)/textclf compile

bench: bench-train bench-serve bench-drift ## every benchmark

bench-train: install ## textclf vs the seeds' Trainer recipe on the AG News sample in ../shared/data
	$(BIN)/python benchmarks/bench_train.py

bench-serve: install ## textclf serve vs a FastAPI + HF pipeline server, same MiniLM model, SST-2 texts
	$(BIN)/python benchmarks/bench_serve.py

bench-drift: install ## drift-report time for 10,000 logged predictions (MiniLM, demo data)
	$(BIN)/python benchmarks/bench_drift.py

clean: ## remove local run state (MLflow store, Optuna study, pipeline artifacts)
	rm -rf mlflow.db mlartifacts optuna.db pipeline_root monitor demo-drift
