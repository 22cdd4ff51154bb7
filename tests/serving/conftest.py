"""A real `bentoml serve` of the service on loopback, started once per module that asks for it."""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from qwenflow.serving.launch import start_serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, env: dict[str, str], timeout: float = 120) -> tuple[subprocess.Popen, str]:
    port = free_port()
    full = {**os.environ, "BENTOML_HOME": str(tmp / "bentoml_home"), "BENTOML_DO_NOT_TRACK": "true",
            "OMP_NUM_THREADS": "1", **env}
    return start_serve(tmp, full, port, tmp / "serve.log", timeout)


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
