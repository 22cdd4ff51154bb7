"""Checkpoints of the TRL/transformers trainers (SFT, reward, DPO, GRPO) that are complete or never used.

transformers writes `checkpoint-N/` in place (model, optimizer, scheduler, RNG states, trainer_state.json), so a
kill mid-write leaves a directory that looks like a checkpoint. The callback below writes a COMPLETE marker (after
every rank has finished its files, fsynced) and does the rotation itself, counting complete checkpoints only;
`resume_point` picks the newest checkpoint with the marker and warns about any newer one without it. Resuming
itself is the trainer's own `train(resume_from_checkpoint=...)`: weights, optimizer (the Online Merging
Optimizer's tau_ref and generator included), LR schedule, RNG streams and the data position.

Extra state a stage needs (GRPO's prompt order) is written by `extra_state()` into `qwenflow_state.json` before
the marker, and read back with `read_extra_state`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
EXTRA = "qwenflow_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def _checkpoints(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found)


def complete(path: Path) -> bool:
    return (path / MARKER).is_file()


def resume_point(trainer_dir: str | Path, resume: bool) -> str | None:
    """The checkpoint to resume from (None: start fresh). Without `resume`, complete checkpoints already in the
    directory are refused (one line naming the flag) rather than silently overwritten or ignored."""
    ckpts = _checkpoints(Path(trainer_dir))
    done = [(s, p) for s, p in ckpts if complete(p)]
    if not resume:
        if done:
            raise FileExistsError(
                f"{trainer_dir} holds checkpoints (newest {done[-1][1].name}); pass --resume to "
                "continue from it, or use an empty --out"
            )
        return None
    newest_done = done[-1][0] if done else -1
    for step, path in ckpts:
        if step > newest_done and not complete(path):
            log.warning(
                "checkpoint %s has no %s marker (written when the run was killed?): skipped, resuming from %s",
                path,
                MARKER,
                done[-1][1] if done else "the start",
            )
    if not done:
        return None
    log.info("resuming from %s", done[-1][1])
    return str(done[-1][1])


def read_extra_state(checkpoint: str | Path | None) -> dict | None:
    if checkpoint is None or not (Path(checkpoint) / EXTRA).is_file():
        return None
    return json.loads((Path(checkpoint) / EXTRA).read_text(encoding="utf-8"))


def _barrier() -> None:
    # lazy: imports torch, numpy (seconds to import)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def atomic_checkpoints(keep: int, extra_state: Callable[[], dict] | None = None):
    """TrainerCallback: marks each checkpoint complete once all ranks wrote it, then keeps the newest `keep`
    complete ones (the trainer's own save_total_limit counts half-written ones too, so it is left off)."""
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from transformers import TrainerCallback

    class AtomicCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            _barrier()  # every rank's rng_state_<rank>.pth / shards are on disk before the marker
            if state.is_world_process_zero:
                path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if extra_state is not None:
                    (path / EXTRA).write_text(json.dumps(extra_state()), encoding="utf-8")
                with open(path / MARKER, "w", encoding="utf-8") as f:
                    f.write(str(state.global_step))
                    f.flush()
                    os.fsync(f.fileno())
                _rotate(Path(args.output_dir), keep)
            _barrier()
            return control

    return AtomicCheckpoints()


def _rotate(root: Path, keep: int) -> None:
    ckpts = _checkpoints(root)
    done = [s for s, p in ckpts if complete(p)]
    keep_from = done[-keep] if len(done) >= keep else -1
    for step, path in ckpts:
        # Older complete ones beyond `keep`, and half-written ones older than the newest complete one.
        if step < keep_from or (not complete(path) and done and step < done[-1]):
            shutil.rmtree(path, ignore_errors=True)


def save_args(section) -> dict:
    """TrainingArguments for checkpointing every `checkpoint_every` optimizer steps (the recipe's section)."""
    return {
        "save_strategy": "steps",
        "save_steps": section.checkpoint_every,
        "save_total_limit": None,
        "save_only_model": False,
    }
