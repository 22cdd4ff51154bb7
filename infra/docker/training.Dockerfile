# Training image: CUDA runtime + the pinned stack + qwenflow. Every pipeline step and PyTorchJob runs it.
# Build from the repository root:  docker build -f infra/docker/training.Dockerfile -t <registry>/qwenflow:<tag> .
FROM nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 BENTOML_DO_NOT_TRACK=true GX_ANALYTICS_ENABLED=false TOKENIZERS_PARALLELISM=false
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev git \
        build-essential ca-certificates && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /opt/qwenflow
# torch first with the CUDA wheel (an open range would pull another build), then the pinned stack.
COPY requirements.txt requirements-data.txt ./
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128 \
    && pip install -r requirements.txt \
    && pip install --no-deps -r requirements-data.txt
COPY . .
RUN pip install --no-deps -e . && qwenflow --help >/dev/null

RUN useradd --uid 1000 --create-home qwenflow && chown -R qwenflow /opt/qwenflow
USER 1000
ENTRYPOINT ["qwenflow"]
