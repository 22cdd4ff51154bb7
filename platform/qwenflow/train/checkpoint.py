"""Checkpoints that are either complete or invisible: written to a temporary directory, then renamed.

A checkpoint holds what accelerate's save_state writes (model in safetensors, optimizer, RNG states of every
process; DeepSpeed's sharded state under ZeRO) plus trainer_state.json (step, scheduler, data position) and, last,
the COMPLETE marker. Resume takes the newest directory that has the marker.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

MARKER = "COMPLETE"
STATE = "trainer_state.json"
KEEP = 2


def _name(step: int) -> str:
    return f"step-{step:07d}"


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint under root; half-written ones (no marker, or still .tmp-*) are ignored."""
    root = Path(root)
    done = [p for p in root.glob("step-*") if (p / MARKER).is_file()] if root.is_dir() else []
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(accelerator, main: bool, root: str | Path, step: int, state: dict) -> Path:
    """Every process calls this (ZeRO shards are saved by their owners); the main one publishes it."""
    root = Path(root)
    tmp, final = root / f".tmp-{_name(step)}", root / _name(step)
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if main:
        (tmp / STATE).write_text(json.dumps(state, indent=2))
        with open(tmp / MARKER, "w") as f:
            f.write(str(step))
            f.flush()
            os.fsync(f.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted(root.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: Path) -> dict:
    """Restore model, optimizer and RNG states in place; return trainer_state.json."""
    accelerator.load_state(str(path))
    return json.loads((path / STATE).read_text())
