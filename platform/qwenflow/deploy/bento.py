"""Build a Bento with the model inside, the serving code, and exact requirements; offline (no package locking)."""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from pathlib import Path

from qwenflow.artifacts import sha256_path
from qwenflow.serving.settings import BENTO_MODEL_DIR, DEPLOY_FILE, Settings
from qwenflow.tracking.model_source import fetch_registered_model, is_registry_uri, resolve

SERVICE = "qwenflow.serving.service:QwenflowLLM"
# What the serving process imports (the Bento's image installs exactly these versions).
SERVING_PACKAGES = [
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "accelerate",
    "bentoml",
    "fastapi",
    "pydantic",
    "pyyaml",
    "jinja2",
    "mlflow",
    "llguidance",
]


def pinned_requirements(packages: list[str] = SERVING_PACKAGES) -> list[str]:
    """name==version for each package as installed here; local tags (+cpu) dropped so a CUDA image gets its build."""
    return [f"{p}=={importlib.metadata.version(p).split('+')[0]}" for p in packages]


def _stage_source(ctx: Path) -> None:
    """The qwenflow package with qwenflow.serving beside it, as it is laid out once installed."""
    # lazy: 1 ms to import, needed only here
    import qwenflow
    import qwenflow.serving

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "tests")
    shutil.copytree(Path(qwenflow.__file__).parent, ctx / "qwenflow", ignore=ignore)
    if (ctx / "qwenflow" / "serving").exists():
        shutil.rmtree(ctx / "qwenflow" / "serving")
    shutil.copytree(Path(qwenflow.serving.__file__).parent, ctx / "qwenflow" / "serving", ignore=ignore)


def build_bento(
    model_uri_or_dir: str | Path,
    *,
    deploy=None,
    served_name: str | None = None,
    version: str | None = None,
    cuda_version: str | None = None,
) -> str:
    """Build the Bento and return its tag (name:version) in BENTOML_HOME's store."""
    # lazy: imports bentoml (130 ms)
    import bentoml

    source = str(model_uri_or_dir)
    labels = {
        "qwenflow.model_source": source[:63] if not is_registry_uri(source) else source.replace("models:/", "")[:63]
    }
    with tempfile.TemporaryDirectory(prefix="qwenflow-bento-") as tmp:
        ctx = Path(tmp)
        if is_registry_uri(source):
            model_dir, mv = fetch_registered_model(source, ctx / "download")
            labels.update({"qwenflow.model_name": mv.name, "qwenflow.model_version": str(mv.version)})
        else:
            model_dir = resolve(source)
        shutil.copytree(model_dir, ctx / BENTO_MODEL_DIR, ignore=shutil.ignore_patterns("checkpoints", ".*"))
        if (ctx / "download").exists():
            shutil.rmtree(ctx / "download")
        labels["qwenflow.model_sha256"] = sha256_path(ctx / BENTO_MODEL_DIR)[:63]
        name = served_name or labels.get("qwenflow.model_name", "qwenflow")
        settings = (
            Settings.from_deploy(deploy, model=BENTO_MODEL_DIR, served_name=name)
            if deploy is not None
            else Settings(model=BENTO_MODEL_DIR, served_name=name)
        )
        (ctx / DEPLOY_FILE).write_text(settings.model_dump_json(indent=2, exclude={"model"}))
        _stage_source(ctx)
        docker = {"python_version": "3.11", **({"cuda_version": cuda_version} if cuda_version else {})}
        bento = bentoml.bentos.build(
            SERVICE,
            name="qwenflow-llm",
            version=version,
            labels=labels,
            build_ctx=str(ctx),
            description="qwenflow OpenAI-compatible LLM server (model inside)",
            include=[
                "qwenflow/**/*.py",
                "qwenflow/**/*.jinja",
                "qwenflow/**/*.yaml",
                f"{BENTO_MODEL_DIR}/**",
                DEPLOY_FILE,
            ],
            python={"packages": pinned_requirements(), "lock_packages": False},
            docker=docker,
        )
        return str(bento.tag)
