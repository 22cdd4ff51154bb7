"""Shared fixtures: a real MLflow server on loopback, an isolated QWENFLOW_HOME, a tiny model directory."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from qwenflow.cli.deploy import stop_group as _stop_group  # SIGTERM the server's group, then SIGKILL

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` (SQLite backend, proxied artifacts) on loopback for the whole session."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_own_group_dying_with_parent,
        # The server's background job runner (huey consumers) is not needed and costs CPU on 2 cores.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited early: {(root / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        _stop_group(proc)
        raise RuntimeError(
            f"mlflow server did not become healthy in 300 s: {(root / 'server.log').read_text()[-2000:]}"
        )
    yield uri
    _stop_group(proc)


def _own_group_dying_with_parent() -> None:
    """In the server's child: its own process group (so teardown can stop its uvicorn workers too), and SIGTERM
    when pytest dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG), so no server outlives the test session."""
    os.setsid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


@pytest.fixture
def tracking(mlflow_server, monkeypatch, tmp_path):
    """Point qwenflow (and mlflow) at the loopback server, with an isolated QWENFLOW_HOME."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("QWENFLOW_HOME", str(tmp_path / "qwenflow_home"))
    monkeypatch.delenv("QWENFLOW_PARENT_RUN_ID", raising=False)
    return mlflow_server


def stdlib_texts(max_bytes: int = 2_000_000) -> list[str]:
    """Real text for quick tests: Python standard-library source files (always on disk)."""
    import sysconfig

    out, used = [], 0
    for p in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        t = p.read_text(encoding="utf-8", errors="ignore")
        out.append(t)
        used += len(t)
        if used >= max_bytes:
            break
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    """A 1024-token BPE trained on stdlib source, saved like the tokenizer stage saves it."""
    from qwenflow.tokenizer.bpe import train_bpe

    out = tmp_path_factory.mktemp("tok")
    train_bpe(stdlib_texts(), vocab_size=1024).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer_dir):
    """A randomly initialised tiny Qwen2 model with its tokenizer, as a save_pretrained directory."""
    from qwenflow.models import build_model
    from qwenflow.recipe import load_recipe
    from qwenflow.tokenizer import load_tokenizer

    recipe = load_recipe("tiny", ["model.vocab_size=1024", "tokenizer.vocab_size=1024"])
    tok = load_tokenizer(tiny_tokenizer_dir)
    model = build_model(recipe.model, seed=0, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    from qwenflow.models import io

    return io.save(
        model, tokenizer=tok, out_dir=tmp_path_factory.mktemp("model"), recipe=recipe, lineage={"stage": "init"}
    )
