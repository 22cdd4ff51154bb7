"""Helpers for the pipeline tests: run `qwenflow` in a subprocess with the SMOKE overrides
(qwenflow.orchestration.smoke: a real run of every stage in a few minutes on 2 cores)."""

import os
import subprocess
import sys
from pathlib import Path

from qwenflow.orchestration.smoke import SMOKE

__all__ = ["SMOKE", "qwenflow_cmd", "run_qwenflow"]  # the tests import SMOKE from here


def qwenflow_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "qwenflow.cli.main", *args]


def run_qwenflow(args: list[str], env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        qwenflow_cmd(*args),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).parents[2],
    )
