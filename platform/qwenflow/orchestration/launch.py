"""How a training stage maps to processes, and the single-node launcher.

    resources.nodes > 1                     -> a Kubeflow Trainer TrainJob (or PyTorchJob) across nodes (trainjob.py)
    one node, N > 1 processes               -> `torchrun --standalone --nproc_per_node N` inside this pod/machine
    one process                             -> the stage function in this process

N is `--nproc` (QWENFLOW_NPROC: N CPU processes with gloo, how CI exercises the distributed path) or else the GPUs
the stage's resources ask for, when this machine has them. Every process runs qwenflow.orchestration.entry, which
calls the same stage function; only rank 0 has side effects (MLflow, model files, hashes).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from qwenflow import dist
from qwenflow.stages import TRAINING

ENV_NPROC = "QWENFLOW_NPROC"
log = logging.getLogger(__name__)


class LaunchFailed(RuntimeError):
    """torchrun's processes did not all exit cleanly."""


def placement(resources) -> tuple[str, int, int]:
    """How the cluster runs a training stage with these resources: (launcher, nodes, processes per node), launcher
    one of "trainjob" / "pytorchjob" (a multi-node job), "torchrun" (in the step's pod), "process" (in-process)."""
    if resources.nodes > 1:
        return resources.launcher, resources.nodes, max(resources.gpus, 1)
    if resources.gpus > 1:
        return "torchrun", 1, resources.gpus
    return "process", 1, 1


def describe(resources) -> str:
    """One line for plans and docs, e.g. 'TrainJob: 4 nodes x 8 processes (torchrun on each node)'."""
    how, nodes, per_node = placement(resources)
    if how in ("trainjob", "pytorchjob"):
        kind = "TrainJob" if how == "trainjob" else "PyTorchJob"
        return f"{kind}: {nodes} nodes x {per_node} processes (torchrun on each node)"
    if how == "torchrun":
        return f"torchrun in the step's pod: {per_node} processes (one per GPU)"
    return "one process in the step's pod"


def processes(resources) -> int:
    """Processes on this node for a training stage with these resources."""
    forced = os.environ.get(ENV_NPROC)
    if forced:
        n = int(forced)
        if n < 1:
            raise ValueError(f"--nproc / {ENV_NPROC} must be at least 1, got {n}")
        return n
    if resources is None or resources.gpus <= 1:
        return 1
    # lazy: imports torch, numpy (seconds to import)
    import torch

    visible = torch.cuda.device_count()
    if visible < resources.gpus:
        # A local machine without the GPUs the recipe asks for runs the stage as one process, as before.
        log.warning("resources.gpus=%d but this machine has %d GPU(s): running one process", resources.gpus, visible)
        return 1
    return resources.gpus


def torchrun(module_args: list[str], nproc: int, *, env: dict[str, str] | None = None) -> None:
    """Run `python -m <module_args>` as `nproc` processes under torchrun on this machine; raise if any fails.

    Output streams through (rank 0 shows progress bars). Stopping this process (SIGTERM from Kubernetes, Ctrl-C)
    stops torchrun and its workers first."""
    child_env = {**os.environ, **(env or {})}
    child_env.pop(ENV_NPROC, None)  # the workers run the stage themselves; they must not launch again
    if "OMP_NUM_THREADS" not in child_env:  # share the cores between the processes instead of oversubscribing
        child_env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        *module_args,
    ]
    proc = subprocess.Popen(cmd, env=child_env, start_new_session=True)

    def stop(signum, frame):
        _kill(proc)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop) if _main_thread() else None
    try:
        code = proc.wait()
    except BaseException:
        _kill(proc)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if code != 0:
        raise LaunchFailed(
            f"{nproc} torchrun processes of `{' '.join(module_args[:2])}` exited with code {code}; "
            "the failing rank's traceback is in the log above"
        )


def _kill(proc: subprocess.Popen) -> None:
    """torchrun forwards SIGTERM to its workers; whatever is left after 30 s gets SIGKILL (the whole group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _main_thread() -> bool:

    return threading.current_thread() is threading.main_thread()


RESULT = ".qwenflow_entry_result.json"  # rank 0 of qwenflow.orchestration.entry writes the stage's result here


def read_entry_result(out: str | Path) -> dict:
    path = Path(out) / RESULT
    if not path.is_file():
        raise RuntimeError(f"the distributed run of this stage ended without a result in {path}; see its log above")
    return json.loads(path.read_text(encoding="utf-8"))


def run_stage_processes(
    stage: str, recipe_path: str, inputs: dict[str, str | None], out: Path, nproc: int, resume: bool
) -> dict:
    """The stage as `nproc` processes on this machine; returns rank 0's result. Under --nproc (not the cluster's
    GPU count) micro batches are fitted to the process count (fit_recipe_to_world)."""
    args = ["qwenflow.orchestration.entry", stage, "--recipe", str(recipe_path), "--out", str(out)]
    for key, path in inputs.items():
        if path:
            args += ["--input", f"{key}={path}"]
    if resume:
        args.append("--resume")
    torchrun(args, nproc, env={"QWENFLOW_FIT_BATCH": "1"} if os.environ.get(ENV_NPROC) else None)
    return read_entry_result(out)


def fit_recipe_to_world(recipe, section_name: str | None = None):
    """Under `--nproc N` on a machine (not the cluster, where the schema already checked the batch against the
    resources), lower a micro batch that does not split over N processes to the largest one that does, keeping
    the global batch (and so the optimisation) the same. Returns the recipe unchanged otherwise."""

    world = dist.world_size()
    if world == 1 or not os.environ.get("QWENFLOW_FIT_BATCH"):
        return recipe
    names = [section_name] if section_name else list(TRAINING)
    updates = {}
    for name in names:
        section: Any = getattr(recipe, name, None)
        glob, micro = getattr(section, "global_batch_size", None), getattr(section, "micro_batch_size", None)
        if not isinstance(glob, int) or not micro or glob % (micro * world) == 0:
            continue
        if glob % world:
            raise ValueError(
                f"{name}.global_batch_size ({glob}) does not split over {world} processes; choose a "
                f"process count that divides it"
            )
        per_rank = glob // world
        fitted = max(d for d in range(1, min(micro, per_rank) + 1) if per_rank % d == 0)
        if dist.is_main():
            log.warning(
                "%s: micro_batch_size %d -> %d so that %d processes share the global batch of %d",
                name,
                micro,
                fitted,
                world,
                glob,
            )
        updates[name] = section.model_copy(update={"micro_batch_size": fitted})
    return recipe.model_copy(update=updates) if updates else recipe
