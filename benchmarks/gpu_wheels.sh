#!/usr/bin/env bash
# Wheels that benchmarks/gpu_stages.py needs on the GPU host and the host's image lacks, downloaded here into .whl/
# (git-ignored through .git/info/exclude, never committed) so they travel with the device run (carry [".whl"]).
#
#   bash benchmarks/gpu_wheels.sh                  # Python 3.12 manylinux wheels (the GPU host) into .whl/
#   PY_VERSION=3.11 bash benchmarks/gpu_wheels.sh /tmp/wheels311   # same set for another interpreter
#
# The host image has torch, accelerate, pandas, pyarrow, typer, rich, pyyaml, safetensors,
# tokenizers, huggingface-hub, psutil, requests, jinja2, matplotlib, scikit-learn, scipy (its package list); the
# stages also import TRL (SFT/DPO/GRPO trainers), datasets (TRL's inputs), pydantic (the recipe schema) and MLflow
# (each stage's run, the platform's default tracking: a local SQLite store, hence the full `mlflow` with SQLAlchemy
# and Alembic). The list below is that closure as pip resolved it against the host's packages (`pip install
# --dry-run --report` in an environment holding only them), one version each, pinned as requirements.txt pins them.
# It fails if the wheels would not leave room for the working tree in the 64 MiB a device call carries.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/.whl}"
PY_VERSION="${PY_VERSION:-3.12}"
LIMIT_MIB=58 # of the 64 MiB a call carries; the tree itself is ~3 MiB

WHEELS=(
  # the project's pins where the host has another version: transformers 5.17 there lacks APIs the platform imports
  # (e.g. transformers.integrations.deepspeed.prevent_arange_dtype_change); peft with it, as TRL imports peft when
  # it is installed. Their own requirements (huggingface-hub>=1.31, tokenizers 0.23, safetensors>=0.8, regex) are
  # the host's versions.
  transformers==5.24.0 peft==0.21.2
  # the stages' own imports
  trl==1.16.0 datasets==5.2.0 mlflow==3.17.2 pydantic==2.14.4
  # datasets
  dill==0.4.1 multiprocess==0.70.19
  # pydantic
  pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  # mlflow (tracking server and SQLite store)
  mlflow-skinny==3.17.2 mlflow-tracing==3.17.2 alembic==1.20.1 sqlalchemy==2.1.9 mako==1.4.3 cryptography==50.0.2
  cffi==2.1.1 pycparser==3.12 docker==7.2.0 flask==3.1.3 flask-cors==6.0.5 blinker==1.9.0 itsdangerous==2.2.0
  graphene==3.4.3 graphql-core==3.2.14 graphql-relay==3.2.0 gunicorn==26.2.0 huey==3.5.4 skops==0.16.0
  prettytable==3.19.0 wcwidth==0.9.5 cachetools==7.3.3 databricks-sdk==0.167.0 google-auth==2.63.1
  pyasn1==0.6.5 pyasn1-modules==0.4.2 fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0 gitpython==3.2.1
  gitdb==4.0.12 smmap==5.0.3 importlib-metadata==9.1.0 opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2
  opentelemetry-proto==1.45.2 opentelemetry-semantic-conventions==0.66b2 python-dotenv==1.2.4 sqlparse==0.6.1
)

if [ "$DEST" = "$ROOT/.whl" ]; then
  exclude="$(git -C "$ROOT" rev-parse --git-path info/exclude)"
  case "$exclude" in /*) ;; *) exclude="$ROOT/$exclude" ;; esac
  mkdir -p "$(dirname "$exclude")"
  grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
fi
mkdir -p "$DEST"
PIP="${PIP:-python3 -m pip}"
$PIP download --quiet --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_34_x86_64 \
  -d "$DEST" "${WHEELS[@]}"

# one version of each: an older download of the same package would stop the install there
dupes="$(ls "$DEST"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)"
if [ -n "$dupes" ]; then
  echo "error: several versions in $DEST of: $dupes; empty $DEST and rerun" >&2
  exit 1
fi
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
mib=$(python3 -c "print(f'{$total / 2**20:.1f}')")
echo "$(ls "$DEST"/*.whl | wc -l) wheels in $DEST: $mib MiB (limit $LIMIT_MIB MiB)"
if [ "$total" -gt $((LIMIT_MIB * 1024 * 1024)) ]; then
  echo "error: $mib MiB of wheels leave too little of the 64 MiB a device call carries" >&2
  exit 1
fi
