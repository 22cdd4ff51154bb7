"""Hostile-input tests run the real `qwenflow` command in a subprocess, as a user would, and check that a bad
input ends in a non-zero exit with one clear error line and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

QWENFLOW = str(Path(sys.executable).with_name("qwenflow"))


@dataclass
class Ran:
    rc: int
    out: str
    err: str

    def error_line(self, *words: str) -> str:
        """The one stderr line that reports the error; fails unless the command failed cleanly on it."""
        assert self.rc != 0, f"exit 0 for a bad input:\n{self.out}\n{self.err}"
        both = self.out + self.err
        assert "Traceback" not in both and "╭" not in both, both  # no traceback, no boxed panel
        lines = [ln for ln in self.err.splitlines() if ln.strip()]
        hits = [ln for ln in lines if all(w in ln for w in words)]
        assert len(hits) == 1, f"expected one line with {words} on stderr, got:\n{self.err}"
        return hits[0]


@pytest.fixture(scope="session")
def qwenflow():
    def run(*args: str, timeout: float = 120) -> Ran:
        env = {**os.environ, "COLUMNS": "80", "GX_ANALYTICS_ENABLED": "false"}
        p = subprocess.run([QWENFLOW, *args], capture_output=True, text=True, timeout=timeout, env=env)
        return Ran(p.returncode, p.stdout, p.stderr)

    return run
