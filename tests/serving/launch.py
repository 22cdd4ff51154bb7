"""Start `bentoml serve` for the qwenflow service in a subprocess and wait until /readyz answers
(shared by the serving tests and benchmarks/serving.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

BENTOML = str(Path(sys.executable).parent / "bentoml")


def start_serve(
    cwd: Path,
    env: dict[str, str],
    port: int,
    log_path: Path,
    timeout: float = 120,
    service: str = "qwenflow.serving.service:QwenflowLLM",
) -> tuple[subprocess.Popen, str]:
    """(process, base URL) of a ready server; raises with the log's tail if it exits or is not ready in time."""
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [BENTOML, "serve", service, "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bentoml serve exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"bentoml serve not ready in {timeout} s:\n{log_path.read_text()[-3000:]}")
