# Serving image without a Bento: the OpenAI-compatible service, model from the registry or a volume at start
# (QWENFLOW_MODEL=models:/NAME@champion). With the model baked in, prefer `bentoml containerize` (docs/operations.md).
# Build from the repository root:  docker build -f infra/docker/serving.Dockerfile -t <registry>/qwenflow-serving:<tag> .
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 BENTOML_DO_NOT_TRACK=true BENTOML_HOME=/tmp/bentoml TOKENIZERS_PARALLELISM=false
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /opt/qwenflow
COPY requirements.txt ./
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128 \
    && grep -E '^(transformers|tokenizers|accelerate|bentoml|mlflow|pydantic|pyyaml|typer|rich)[=<>]' requirements.txt \
       > serving-requirements.txt && pip install -r serving-requirements.txt
COPY platform platform
COPY serving serving
COPY components components
COPY pipelines pipelines
COPY setup.py pyproject.toml README.md ./
RUN pip install --no-deps . && python -c "import qwenflow.serving.engine"

# Same uid as images from `bentoml containerize`, so the Helm chart's securityContext fits both.
RUN useradd --uid 1034 --create-home bentoml
USER 1034
WORKDIR /tmp
EXPOSE 3000
CMD ["bentoml", "serve", "qwenflow.serving.service:QwenflowLLM", "--host", "0.0.0.0", "--port", "3000"]
