# textclf's three images, one target each, built from the repository root by `make images` (names and tags come
# from src/textclf/names.py; src/textclf/deploy/images.py runs the builds):
#   docker build --target serving -t ghcr.io/textclf/textclf-serving:0.1.0 .
#   docker build --target monitor -t ghcr.io/textclf/textclf-monitor:0.1.0 .
#   docker build --target components -t ghcr.io/textclf/textclf-components:0.1.0 .
# Each image installs only its own extra of pyproject.toml: serving (KServe and ONNX Runtime, no PyTorch), monitor
# (the monitoring service, drift checks with PyTorch, the UI), all (the pipeline steps and the MLflow server).
# It builds with BuildKit and with the classic builder alike; the classic one builds every stage above its target,
# hence the order: the small images first.
#
# Where packages come from is the builder's choice, never baked into an image:
# - BASE_IMAGE: any Debian bookworm image with Python 3.11, venv and CA certificates (`make base-image` builds
#   one from Debian's packages where the official image cannot be pulled).
# - TORCH_INDEX_URL: PyTorch's CPU wheel index (the CUDA build of the same torch is several GB larger); empty =
#   wherever pip's configuration below finds torch (a mirror, a local wheel folder).
# - .build-config/: `make images` writes the building machine's pip configuration there (index URLs, CA bundle,
#   constraints, local wheel folders); only the build stages read it, and no image is made from them.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# pip installs with --no-compile: .pyc files would add ~150 MB to each image. (PIP_NO_COMPILE=1 would not do it:
# pip reads a "no-" option's variable as the value of the positive option, and would compile everything.)
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONFIG_FILE=/build-config/pip.conf
# binutils' strip, for the symbol tables of torch's and pyarrow's libraries (image_venv.py prune): where no
# Debian mirror answers, the libraries keep them and the images are ~130 MB larger.
# hadolint ignore=DL3008
RUN (apt-get update && apt-get install -y --no-install-recommends binutils && rm -rf /var/lib/apt/lists/*) \
    || echo "no binutils: shared libraries keep their symbol tables"
COPY .build-config/ /build-config/
WORKDIR /build
# constraints.txt pins every dependency at the version the tests ran (`make constraints`).
COPY pyproject.toml constraints.txt src/textclf/deploy/image_venv.py ./
RUN python3 -m venv /opt/venv

# The source, which each environment installs last: a change to the code reinstalls textclf alone, over
# dependencies already in their layers.
FROM build AS source
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
COPY monitoring ./monitoring

FROM build AS serving-venv
RUN python3 image_venv.py requirements pyproject.toml serving > requirements.txt \
    && /opt/venv/bin/pip install --no-compile --constraint constraints.txt --requirement requirements.txt \
    && python3 image_venv.py prune /opt/venv/lib/python3.11/site-packages
COPY --from=source /src /src
RUN /opt/venv/bin/pip install --no-compile --no-deps /src

FROM ${BASE_IMAGE} AS runtime
# uid 1000, as the chart and Compose run every container. The folders named volumes mount over belong to it: the
# engine copies a folder's owner into a new volume only when the image holds that folder.
RUN useradd --uid 1000 --user-group --no-create-home --home-dir /tmp textclf \
    && install -d -o 1000 -g 1000 /var/lib/mlflow /var/lib/textclf /var/lib/textclf/train /var/lib/textclf-monitor
# HOME is /tmp, where every deployment mounts a writable tmpfs (the chart an emptyDir, Compose a tmpfs): caches of
# MLflow, Hugging Face and Matplotlib land there under a read-only root.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
WORKDIR /tmp

# The KServe predictor on ONNX Runtime. KServe's storage initializer puts the model at /mnt/models; no Hub at
# run time.
FROM runtime AS serving
COPY --from=serving-venv /opt/venv /opt/venv
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_NO_ADVISORY_WARNINGS=1 \
    TEXTCLF_SERVE_HOST=0.0.0.0
USER 1000
EXPOSE 8080 8081
ENTRYPOINT ["textclf"]
CMD ["serve", "--model", "/mnt/models"]

# The monitor's dependencies: torch alone first from TORCH_INDEX_URL, then everything else, torch's own
# dependencies included, at constraints.txt's versions from pip's configuration. The components' environment grows
# from them.
FROM build AS monitor-dependencies
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN python3 image_venv.py requirements pyproject.toml monitor > requirements.txt \
    && grep '^torch==' requirements.txt > torch.txt \
    && /opt/venv/bin/pip install --no-compile --no-deps ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
        --requirement torch.txt \
    && /opt/venv/bin/pip install --no-compile --constraint constraints.txt --requirement requirements.txt \
    && python3 image_venv.py prune /opt/venv/lib/python3.11/site-packages

FROM monitor-dependencies AS monitor-venv
COPY --from=source /src /src
RUN /opt/venv/bin/pip install --no-compile --no-deps /src

# The monitoring service, the drift-check CronJob's `textclf check` and the UI. Reports and retraining data go to
# the mounted volume; the root filesystem stays read-only.
FROM runtime AS monitor
COPY --from=monitor-venv /opt/venv /opt/venv
ENV HF_HUB_OFFLINE=1 \
    TEXTCLF_MONITOR_HOST=0.0.0.0 \
    TEXTCLF_MONITOR_WORKDIR=/var/lib/textclf-monitor
USER 1000
EXPOSE 8000
ENTRYPOINT ["textclf"]
CMD ["monitor"]

FROM monitor-dependencies AS components-venv
RUN python3 image_venv.py requirements pyproject.toml all > requirements.txt \
    && /opt/venv/bin/pip install --no-compile --constraint constraints.txt --requirement requirements.txt \
    && python3 image_venv.py prune /opt/venv/lib/python3.11/site-packages
COPY --from=source /src /src
RUN /opt/venv/bin/pip install --no-compile --no-deps /src

# The pipeline steps: KFP starts each with its own command (`sh -c ... python3 -m kfp.dsl.executor_main`, the
# venv first on PATH). The stack's MLflow server runs `mlflow server` from this image too, so server and
# clients share one MLflow version; Compose's monitor runs it as well, since it retrains on its own machine.
# Steps may load encoders from the Hugging Face Hub; the packaged default needs none.
FROM runtime AS components
COPY --from=components-venv /opt/venv /opt/venv
USER 1000
