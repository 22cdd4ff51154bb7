"""`qwenflow deploy build|helm-values|serve`: package a model as a Bento, write Helm values, serve locally."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

from .common import RecipeOpt, SetOpt, clean_errors, console, get_recipe

app = typer.Typer(help="Serve models: Bentos, Helm values, a local OpenAI-compatible server.", no_args_is_help=True)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model directory or registry URI models:/NAME@ALIAS")]


@app.command("build")
def build(model: ModelOpt, recipe: RecipeOpt = "tiny", set_: SetOpt = None,
          name: Annotated[str | None, typer.Option(help="Model id clients pass (default: registered name)")] = None,
          cuda: Annotated[str | None, typer.Option(help="CUDA version for the container base, e.g. 12.4.1")] = None):
    """Build a Bento offline with the model inside (sha256-checked for registry URIs) and pinned requirements."""
    from qwenflow.deploy.bento import build_bento

    r = get_recipe(recipe, set_)
    with clean_errors():  # registry and integrity errors are ValueErrors
        tag = build_bento(model, deploy=r.deploy, served_name=name, cuda_version=cuda)
    console.print(f"built [bold]{tag}[/] in {os.environ.get('BENTOML_HOME', '~/bentoml')}\n"
                  f"containerize: bentoml containerize {tag} -t <registry>/qwenflow-serving:<tag>")


@app.command("helm-values")
def helm_values_cmd(model: ModelOpt, recipe: RecipeOpt = "tiny", set_: SetOpt = None,
                    out: Annotated[Path, typer.Option("--out", "-o", help="Values file to write")] = Path("values-model.yaml"),
                    tracking_uri: Annotated[str | None, typer.Option(help="MLflow address as pods see it (default: MLFLOW_TRACKING_URI)")] = None,
                    credentials_secret: Annotated[str, typer.Option(help="Secret holding MLflow/S3 credentials")] = ""):
    """Write Helm values that serve a registered model with the recipe's deploy settings."""
    from qwenflow.deploy.helm_values import helm_values

    r = get_recipe(recipe, set_)
    with clean_errors():  # registry and integrity errors are ValueErrors
        values = helm_values(model, r.deploy, tracking_uri=tracking_uri, credentials_secret=credentials_secret)
    out.write_text(yaml.safe_dump(values, sort_keys=False))
    console.print(f"wrote {out} (version {values['podAnnotations'].get('qwenflow.io/model-version', '?')}); "
                  f"install: helm upgrade --install llm helm/qwenflow-serving -f {out}")


@app.command("serve")
def serve(model: ModelOpt, recipe: RecipeOpt = "tiny", set_: SetOpt = None,
          host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port")] = 3000):
    """Run `bentoml serve` on the OpenAI-compatible service with this model and the recipe's deploy settings."""
    r = get_recipe(recipe, set_)
    d = r.deploy
    env = {**os.environ, "QWENFLOW_MODEL": model, "QWENFLOW_YARN": str(d.yarn), "QWENFLOW_ATTENTION": d.attention,
           "QWENFLOW_MAX_TOKENS_LIMIT": str(d.max_tokens_limit), "QWENFLOW_MAX_BATCH_SIZE": str(d.max_batch_size),
           "BENTOML_DO_NOT_TRACK": "true"}
    cmd = [str(Path(sys.executable).parent / "bentoml"), "serve", "qwenflow.serving.service:QwenflowLLM",
           "--host", host, "--port", str(port)]
    console.print(f"serving {model} on http://{host}:{port}/v1 (Ctrl-C stops)")
    raise typer.Exit(subprocess.call(cmd, env=env))
