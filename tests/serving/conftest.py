"""A real `bentoml serve` of the service on loopback, started once per module that asks for it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


BENTOML = str(Path(sys.executable).parent / "bentoml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, env: dict[str, str], timeout: float = 120) -> tuple[subprocess.Popen, str]:
    port = free_port()
    full = {**os.environ, "BENTOML_HOME": str(tmp / "bentoml_home"), "BENTOML_DO_NOT_TRACK": "true",
            "OMP_NUM_THREADS": "1", **env}
    log = open(tmp / "serve.log", "w")
    proc = subprocess.Popen([BENTOML, "serve", "qwenflow.serving.service:QwenflowLLM", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=tmp, env=full, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bentoml serve exited early:\n{(tmp / 'serve.log').read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError(f"bentoml serve not ready in {timeout} s:\n{(tmp / 'serve.log').read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="package")
def server(tiny_model_dir, tmp_path_factory):
    """The tiny model behind the OpenAI-compatible API: (base_url, served model name, server log path)."""
    tmp = tmp_path_factory.mktemp("serve")
    proc, url = start_server(tmp, {"QWENFLOW_MODEL": str(tiny_model_dir), "QWENFLOW_SERVED_NAME": "tiny",
                                   "QWENFLOW_MAX_TOKENS_LIMIT": "256"})
    yield url, "tiny", tmp / "serve.log"
    stop_server(proc)
