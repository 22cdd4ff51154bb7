# Serving image (ghcr.io/qwenflow/serving): the BentoML OpenAI-compatible service; the model comes from the
# registry or a volume at start (QWENFLOW_MODEL=models:/NAME@champion, sha256-checked). The Helm chart runs it, and
# with `engine: vllm` runs it as the init container that fetches and verifies the model for vLLM.
# Build from the repository root:  docker build -f infra/docker/serving.Dockerfile -t ghcr.io/qwenflow/serving:0.1.0 .
# Debian 12 ships Python 3.11, the project's Python; the CUDA runtime comes with torch's cu128 wheel.
FROM python:3.11.11-slim-bookworm

LABEL org.opencontainers.image.title="qwenflow-serving" \
      org.opencontainers.image.source="https://github.com/qwenflow/qwenflow" \
      io.qwenflow.image="ghcr.io/qwenflow/serving"

# TOKENIZERS_PARALLELISM is a tokenizers switch, not a secret (hadolint's DL3064 matches on TOKEN).
# hadolint ignore=DL3064
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 \
    BENTOML_DO_NOT_TRACK=true BENTOML_HOME=/tmp/bentoml TOKENIZERS_PARALLELISM=false \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH

WORKDIR /opt/qwenflow
COPY requirements.txt ./
# Only what the service imports, at the versions requirements.txt pins (grep keeps the pins in one place).
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN python -m venv /opt/venv \
    && pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128 \
    && grep -E '^(transformers|tokenizers|accelerate|safetensors|bentoml|mlflow|pydantic|pyyaml|typer|rich|httpx)[=<>]' \
       requirements.txt > serving-requirements.txt \
    && pip install -r serving-requirements.txt
COPY setup.py pyproject.toml README.md ./
COPY platform platform
COPY components components
COPY pipelines pipelines
COPY serving serving
RUN pip install --no-deps . && python -c "import qwenflow.serving.engine"

# Same uid as images from `bentoml containerize`, so the Helm chart's securityContext fits both.
RUN useradd --uid 1034 --create-home --shell /usr/sbin/nologin bentoml
USER 1034
WORKDIR /home/bentoml
EXPOSE 3000
CMD ["bentoml", "serve", "qwenflow.serving.service:QwenflowLLM", "--host", "0.0.0.0", "--port", "3000"]
