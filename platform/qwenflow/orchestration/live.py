"""The live view of a local run: which stage runs, what finished (and how long it took), the latest log line."""

from __future__ import annotations

import io
import time
from pathlib import Path

from . import events
from .summary import ORDER

STYLE = {"running": "bold yellow", "done": "green", "cached": "cyan", "skipped": "dim", "failed": "bold red"}


class LogTee(io.TextIOBase):
    """Stands in for stdout during a run: every line goes to the log file; the view shows the latest one."""

    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8", buffering=1)
        self.last = ""

    def write(self, s: str) -> int:
        self.file.write(s)
        for line in s.splitlines():
            if line.strip():
                self.last = line.strip()
        return len(s)

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()


def view(events_path: Path, t0: float, tee: LogTee | None = None):
    # lazy: 74 ms to import, needed only here
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    state = events.latest_by_stage(events.read(events_path))
    table = Table(title=f"qwenflow run ({time.time() - t0:.0f} s)", expand=False)
    table.add_column("stage")
    table.add_column("status")
    table.add_column("s", justify="right")
    now = time.time()
    for name in ORDER:
        s = state.get(name)
        status = "waiting" if s is None else ("running" if s["status"] == "start" else s["status"])
        secs = (
            "" if s is None else (f"{now - s['started']:.0f}" if status == "running" else f"{s.get('seconds', 0):.1f}")
        )
        table.add_row(name, Text(status, style=STYLE.get(status, "")), secs)
    tail = Text((tee.last if tee else "")[-160:], style="dim")
    return Group(table, tail)
