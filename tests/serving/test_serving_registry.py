"""Models from the MLflow registry (a real server): sha256 checked before serving, Bento built with the model
inside, Helm values written for the registered version."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import helm_python
import httpx
import psutil
import pytest
import yaml
from conftest import free_port, start_server, stop_server
from mlflow import MlflowClient
from typer.testing import CliRunner

from qwenflow.artifacts import sha256_path
from qwenflow.cli.main import app
from qwenflow.deploy.helm_values import CHART_DIR
from qwenflow.eval.registry import register_model
from qwenflow.tracking.model_source import SHA256_TAG, ModelIntegrityError, resolve
from tests.infra.manifests import documents, validate


def register(model_dir: Path, name: str, alias: str, sha: str | None = None) -> str:
    """Register with the evaluation stage's own function; `sha` overwrites the recorded hash (a tampered version)."""
    version = register_model(model_dir, name, {"suite": "quick", "metrics": {}}, alias=alias)
    if sha:
        MlflowClient().set_model_version_tag(name, version, SHA256_TAG, sha)
    return f"models:/{name}@{alias}"


@pytest.fixture(scope="module")
def registered(tiny_model_dir, mlflow_server, tmp_path_factory):
    """A good champion and a 'tampered' version whose recorded hash does not match its files."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mp.setenv("QWENFLOW_HOME", str(tmp_path_factory.mktemp("qwenflow_home")))
    good = register(tiny_model_dir, "qwenflow-tiny", "champion")
    bad = register(tiny_model_dir, "qwenflow-tiny", "tampered", sha="0" * 64)
    yield good, bad, mlflow_server
    mp.undo()


def test_registry_download_is_verified(registered, tiny_model_dir, tmp_path):
    good, bad, _ = registered
    local = resolve(good, tmp_path / "good")
    assert sha256_path(local) == sha256_path(tiny_model_dir)
    with pytest.raises(ModelIntegrityError, match="refusing to serve"):
        resolve(bad, tmp_path / "bad")
    with pytest.raises(ValueError, match="not found in the MLflow registry"):
        resolve("models:/qwenflow-tiny@nope", tmp_path / "none")
    with pytest.raises(ValueError, match="not a registry URI"):
        resolve("models:/just-a-name", tmp_path / "x")


def test_a_download_is_reused_until_its_alias_moves(registered, tiny_model_dir):
    """resolve() keeps one verified download per version: a second call reuses it, a moved alias fetches anew."""
    uri = register(tiny_model_dir, "qwenflow-tiny", "moving")
    first = resolve(uri)
    (first / "reused.txt").write_text("same download")
    assert resolve(uri) == first and (first / "reused.txt").is_file()
    register(tiny_model_dir, "qwenflow-tiny", "moving")  # a new version takes the alias
    second = resolve(uri)
    assert second != first and not (second / "reused.txt").exists()
    assert sha256_path(second) == sha256_path(tiny_model_dir)


def test_server_serves_the_verified_champion(registered, tmp_path):
    good, _, uri = registered
    proc, url = start_server(tmp_path, {"QWENFLOW_MODEL": good, "MLFLOW_TRACKING_URI": uri})
    try:
        assert httpx.get(url + "/v1/models").json()["data"][0]["id"] == "qwenflow-tiny"
        r = httpx.post(url + "/v1/completions", json={"model": "qwenflow-tiny", "prompt": "x", "max_tokens": 3})
        assert r.status_code == 200
    finally:
        stop_server(proc)
    # A tampered version fails the same check in the server's __init__ (model_source.resolve, tested above); starting a
    # second server only to watch BentoML give up on its worker costs ~90 s, so it is not repeated here.


def test_bento_holds_the_registered_model(registered, tiny_model_dir, tmp_path, monkeypatch):
    import bentoml

    good, _, _ = registered
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml_home"))
    result = CliRunner().invoke(app, ["deploy", "build", "--model", good, "--recipe", "tiny"])
    assert result.exit_code == 0, result.output
    tag = result.output.split("built ")[1].split()[0]
    bento = bentoml.get(tag, _bento_store=bentoml._internal.bento.BentoStore(str(tmp_path / "bentoml_home" / "bentos")))
    src = Path(bento.path) / "src"
    assert (
        sha256_path(src / "model")
        == sha256_path(tiny_model_dir)
        == bento.info.labels["qwenflow.model_sha256"][:63] + sha256_path(tiny_model_dir)[63:]
    )
    assert bento.info.labels["qwenflow.model_name"] == "qwenflow-tiny"
    deploy = json.loads((src / "qwenflow_deploy.json").read_text())
    assert deploy["served_name"] == "qwenflow-tiny" and deploy["max_tokens_limit"] == 256
    reqs = (Path(bento.path) / "env" / "python" / "requirements.txt").read_text()
    for pkg in ("torch==", "transformers==", "bentoml=="):
        assert pkg in reqs
    assert (src / "qwenflow" / "serving" / "service.py").is_file()


def test_helm_values_for_a_registered_model_render_valid_manifests(registered, tmp_path):
    good, _, uri = registered
    out = tmp_path / "values.yaml"
    result = CliRunner().invoke(
        app,
        [
            "deploy",
            "helm-values",
            "--model",
            good,
            "--recipe",
            "qwen2.5-7b",
            "--out",
            str(out),
            "--tracking-uri",
            "http://mlflow.qwenflow-platform.svc:5000",
            "--credentials-secret",
            "mlflow-creds",
        ],
    )
    assert result.exit_code == 0, result.output
    values = yaml.safe_load(out.read_text())
    version = MlflowClient(uri).get_model_version_by_alias("qwenflow-tiny", "champion").version
    assert values["model"]["uri"] == f"models:/qwenflow-tiny/{version}"  # the alias resolved and pinned
    assert values["podAnnotations"]["qwenflow.io/model-uri"] == good
    assert values["podAnnotations"]["qwenflow.io/model-version"] == str(version)
    assert values["gpu"]["count"] >= 1 and values["serving"]["yarn"] is True
    chart = helm_python.Chart.load(CHART_DIR)
    docs = documents(chart.render(values, name="llm", namespace="serving"))
    chart.close()
    assert [p for d in docs for p in validate(d)] == []
    missing = CliRunner().invoke(
        app, ["deploy", "helm-values", "--model", "models:/qwenflow-tiny@nope", "--out", str(tmp_path / "x.yaml")]
    )
    assert missing.exit_code == 2 and "not found in the MLflow registry" in missing.output


def _serve_cli(model: str, port: int, tmp: Path, **env) -> subprocess.Popen:
    """`qwenflow deploy serve` as a user runs it, with its temporary files under `tmp`."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "qwenflow"), "deploy", "serve", "--model", model, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "TMPDIR": str(tmp),
            "BENTOML_HOME": str(tmp / "bentoml_home"),
            "OMP_NUM_THREADS": "1",
            **env,
        },
    )


def test_deploy_serve_refuses_a_missing_model_fast(tmp_path):
    started = time.monotonic()
    proc = _serve_cli("/nonexistent", free_port(), tmp_path)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and time.monotonic() - started < 10
    assert "not a model directory" in err and "Traceback" not in err + out


def test_deploy_serve_refuses_a_tampered_model_once_and_leaves_nothing(registered, tmp_path):
    _, bad, uri = registered
    proc = _serve_cli(bad, free_port(), tmp_path, MLFLOW_TRACKING_URI=uri)
    out, err = proc.communicate(timeout=120)  # no retry loop: it ends by itself
    assert proc.returncode != 0
    assert err.count("refusing to serve") == 1 and "Traceback" not in err + out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("qwenflow-")] == []  # the download is gone


def test_deploy_serve_stops_its_server_on_sigterm(tiny_model_dir, tmp_path):
    port = free_port()
    proc = _serve_cli(str(tiny_model_dir), port, tmp_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("deploy serve did not become ready")
    assert (
        httpx.post(
            url + "/v1/completions", json={"model": "qwenflow", "prompt": "x", "max_tokens": 2}, timeout=30
        ).status_code
        == 200
    )
    server = psutil.Process(proc.pid).children(recursive=True)  # bentoml serve, its arbiter and workers
    assert server
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    with pytest.raises(httpx.HTTPError):  # nothing answers on the port any more
        httpx.get(url + "/readyz", timeout=2)
    _, alive = psutil.wait_procs(server, timeout=10)
    assert alive == [], alive  # none of them outlives the command
