# textclf's three images, one target each, built from the repository root (`make images`; names and tags
# come from src/textclf/names.py):
#   docker build --target components -t ghcr.io/textclf/textclf-components:0.1.0 .
#   docker build --target serving -t ghcr.io/textclf/textclf-serving:0.1.0 .
#   docker build --target monitor -t ghcr.io/textclf/textclf-monitor:0.1.0 .
# They share the build stage and the runtime base: BuildKit builds the heavy layers once, and a node that
# holds all three stores those layers once.
FROM python:3.11-slim-bookworm AS build
# No .pyc files: they would add ~500 MB, and a read-only root filesystem could not write them anyway.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_COMPILE=1
WORKDIR /src
# CPU wheels: the CUDA build of the same torch is several GB larger.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml setup.py README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
COPY monitoring ./monitoring
RUN /opt/venv/bin/pip install .
# The numeric libraries' own test suites and torch's C++ headers (~300 MB) are never used at run time.
RUN site=/opt/venv/lib/python3.11/site-packages \
    && find "$site/torch" "$site/numpy" "$site/pandas" "$site/scipy" "$site/sklearn" "$site/statsmodels" \
        "$site/sympy" "$site/networkx" "$site/matplotlib" "$site/pyarrow" \
        -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + \
    && rm -rf "$site/torch/include"

FROM python:3.11-slim-bookworm AS runtime
RUN useradd --uid 1000 --create-home textclf
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/textclf
WORKDIR /home/textclf

# The pipeline steps: KFP starts each with its own command (`sh -c ... python3 -m kfp.dsl.executor_main`, the
# venv first on PATH). The stack's MLflow server runs `mlflow server` from this image too, so server and
# clients share one MLflow version. Steps may load encoders from the Hugging Face Hub.
FROM runtime AS components
USER 1000

# The KServe predictor. KServe's storage initializer puts the model at /mnt/models; no Hub at run time.
FROM runtime AS serving
ENV HF_HUB_OFFLINE=1 \
    TEXTCLF_SERVE_HOST=0.0.0.0
USER 1000
EXPOSE 8080 8081
ENTRYPOINT ["textclf"]
CMD ["serve", "--model", "/mnt/models"]

# The monitoring service (and the drift-check CronJob's `textclf check`). Reports and retraining data go to
# the mounted volume; the root filesystem stays read-only.
FROM runtime AS monitor
ENV HF_HUB_OFFLINE=1 \
    TEXTCLF_MONITOR_HOST=0.0.0.0 \
    TEXTCLF_MONITOR_WORKDIR=/var/lib/textclf-monitor
USER 1000
EXPOSE 8000
ENTRYPOINT ["textclf"]
CMD ["monitor"]
