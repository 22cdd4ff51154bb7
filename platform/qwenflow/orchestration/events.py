"""Stage events (start, done, cached, skipped, failed) appended as JSON lines: the live view, the summary and the
benchmark read them. Written only when QWENFLOW_EVENTS names a file (local runs set it)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ENV = "QWENFLOW_EVENTS"


def emit(stage: str, status: str, **fields) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    record = {"time": time.time(), "stage": stage, "status": status, **fields}
    # One short write per line with O_APPEND: lines from successive task processes never interleave.
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=str) + "\n")


def read(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written right now
    return out


def latest_by_stage(records: list[dict]) -> dict[str, dict]:
    """The last event of each stage, merged with its start event (for the start time)."""
    state: dict[str, dict] = {}
    for r in records:
        prev = state.get(r["stage"], {})
        state[r["stage"]] = {
            **prev,
            **r,
            "started": prev.get("started", r["time"]) if r["status"] != "start" else r["time"],
        }
    return state
