"""`qwenflow deploy build|helm-values|serve`: package a model as a Bento, write Helm values, serve locally."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml

from .common import RecipeOpt, SetOpt, clean_errors, console, err_console, get_recipe

app = typer.Typer(help="Serve models: Bentos, Helm values, a local OpenAI-compatible server.", no_args_is_help=True)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model directory or registry URI models:/NAME@ALIAS")]


@app.command("build")
def build(
    model: ModelOpt,
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    name: Annotated[str | None, typer.Option(help="Model id clients pass (default: registered name)")] = None,
    cuda: Annotated[str | None, typer.Option(help="CUDA version for the container base, e.g. 12.4.1")] = None,
):
    """Build a Bento offline with the model inside (sha256-checked for registry URIs) and pinned requirements."""
    # lazy: kept out of `qwenflow --help` start-up (53 ms)
    from qwenflow.deploy.bento import build_bento

    r = get_recipe(recipe, set_)
    with clean_errors():  # registry and integrity errors are ValueErrors
        tag = build_bento(model, deploy=r.deploy, served_name=name, cuda_version=cuda)
    console.print(
        f"built [bold]{tag}[/] in {os.environ.get('BENTOML_HOME', '~/bentoml')}\n"
        f"containerize: bentoml containerize {tag} -t <registry>/qwenflow-serving:<tag>"
    )


@app.command("helm-values")
def helm_values_cmd(
    model: ModelOpt,
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Values file to write")] = Path("values-model.yaml"),
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow address as pods see it (default: MLFLOW_TRACKING_URI)")
    ] = None,
    credentials_secret: Annotated[str, typer.Option(help="Secret holding MLflow/S3 credentials")] = "",
):
    """Write Helm values that serve a registered model with the recipe's deploy settings."""
    # lazy: kept out of `qwenflow --help` start-up (68 ms)
    from qwenflow.deploy.helm_values import helm_values

    r = get_recipe(recipe, set_)
    with clean_errors():  # registry and integrity errors are ValueErrors
        values = helm_values(
            model, r.deploy, tracking_uri=tracking_uri, credentials_secret=credentials_secret, recipe=r
        )
    out.write_text(yaml.safe_dump(values, sort_keys=False))
    console.print(
        f"wrote {out} (version {values['podAnnotations'].get('qwenflow.io/model-version', '?')}); "
        f"install: helm upgrade --install llm helm/qwenflow-serving -f {out}"
    )


@app.command("serve")
def serve(
    model: ModelOpt,
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 3000,
    ready_timeout: Annotated[float, typer.Option(help="Seconds the server may take to become ready")] = 600,
):
    """Check and verify the model (sha256 for registry URIs), then run `bentoml serve` on the OpenAI-compatible
    service with the recipe's deploy settings. A model that fails its checks, or a server that exits or is not ready
    in time, ends the command with one line and a non-zero status; SIGTERM/SIGINT stop the server too. A registry
    download lives in a temporary directory removed on exit. Set QWENFLOW_API_KEY (or QWENFLOW_API_KEY_FILE) to
    require `Authorization: Bearer KEY`."""

    r = get_recipe(recipe, set_)
    d = r.deploy
    download = Path(tempfile.mkdtemp(prefix="qwenflow-serve-"))
    proc = None
    try:
        with clean_errors():  # registry, integrity and model-check errors are ValueErrors: one line, exit 2
            model_dir, served_name = _verified_model(model, download)
        # lazy: kept out of `qwenflow --help` start-up (66 ms)
        from qwenflow.serving.settings import FROM_RECIPE, Settings

        settings = Settings.from_deploy(d, model=str(model_dir), served_name=served_name)
        # the recipe's fields and the model only: any other QWENFLOW_* variable the caller set still applies
        env = {**os.environ, **settings.env("model", "served_name", *FROM_RECIPE), "BENTOML_DO_NOT_TRACK": "true"}
        cmd = [
            str(Path(sys.executable).parent / "bentoml"),
            "serve",
            "qwenflow.serving.service:QwenflowLLM",
            "--host",
            host,
            "--port",
            str(port),
        ]
        proc = subprocess.Popen(cmd, env=env, start_new_session=True)  # its own group: stopping it stops its workers
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, _raise_stop)
        console.print(f"serving {served_name} ({model}) on http://{host}:{port}/v1 (Ctrl-C stops)")
        code = _wait_ready_then_serve(
            proc, f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}", ready_timeout
        )
        raise typer.Exit(code)
    except _Stop:
        raise typer.Exit(0) from None
    finally:
        if proc is not None:
            stop_group(proc)
        shutil.rmtree(download, ignore_errors=True)


class _Stop(Exception):
    """SIGTERM/SIGINT/SIGHUP reached `deploy serve`."""


def _raise_stop(signum, frame):
    raise _Stop()


def _verified_model(model: str, download: Path) -> tuple[Path, str]:
    """(local directory, served name): registry URIs downloaded into `download` and sha256-checked, then the
    directory's config, weights and tokenizer checked without loading the weights."""
    # lazy: kept out of `qwenflow --help` start-up (59 ms)
    from qwenflow.tracking.model_source import is_registry_uri, parse_registry_uri, resolve

    model_dir = resolve(model, download / "model")  # a bad source fails here, before torch is imported
    # after the check above: the loader imports torch and transformers (13 s measured on a loaded 2-core machine)
    from qwenflow.serving.loader import check_model_dir

    check_model_dir(model_dir)
    return model_dir, parse_registry_uri(model)[0] if is_registry_uri(model) else "qwenflow"


def _wait_ready_then_serve(proc: subprocess.Popen, url: str, ready_timeout: float) -> int:

    # lazy: kept out of `qwenflow --help` start-up (177 ms)
    import httpx

    deadline, ready = time.monotonic() + ready_timeout, False
    while True:
        code = proc.poll()
        if code is not None:
            err_console.print(
                f"[bold red]error:[/] bentoml serve exited with status {code} "
                f"{'after serving' if ready else 'before it was ready'} (its log is above)"
            )
            return code or 1
        if not ready:
            try:
                ready = httpx.get(url + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                pass
            if ready:
                console.print(f"ready: {url}/v1")
            elif time.monotonic() > deadline:
                err_console.print(
                    f"[bold red]error:[/] the server was not ready within {ready_timeout:.0f} s "
                    "(its log is above); stopped it"
                )
                return 1
        time.sleep(0.5)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (bentoml's arbiter and workers), SIGKILL what is left after 20 s."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
