"""Run the recipe pipeline on this machine: the same KFP pipeline under kfp.local's SubprocessRunner, MLflow on a
local SQLite store (or any tracking URI), the content-keyed resume cache, a live view and a final summary."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from qwenflow.recipe import load_recipe
from qwenflow.tracking import qwenflow_home
from qwenflow.tracking.lineage import RUN_DIR_ENV, close_dead_attempts

from . import cache, events, launch
from .live import LogTee, view
from .summary import RunSummary, summarize


class PipelineFailed(RuntimeError):
    """A local run stopped; names the stage, the reason and the log."""

    def __init__(self, summary: RunSummary, message: str):
        super().__init__(message)
        self.summary = summary


@dataclass
class LocalRun:
    recipe: str = "tiny"
    overrides: tuple[str, ...] = ()
    run_dir: Path | None = None  # default: $QWENFLOW_HOME/runs/<recipe>; reruns there resume
    tracking_uri: str | None = None  # default: sqlite under QWENFLOW_HOME
    force: tuple[str, ...] = ()  # stages to rerun although cached ("all" reruns everything)
    no_cache: bool = False
    live: bool = True
    nproc: int = 1  # >1: training stages run as N torchrun processes (orchestration.launch)


def _env(run: LocalRun, run_dir: Path, events_path: Path) -> dict[str, str]:

    home = qwenflow_home()
    env = {
        cache.ENV_ROOT: "" if run.no_cache else str(run_dir / "cache"),
        cache.ENV_FORCE: ",".join(run.force),
        events.ENV: str(events_path),
        "QWENFLOW_HOME": str(home),
        "MLFLOW_TRACKING_URI": run.tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{home / 'mlflow.db'}",
        "BENTOML_HOME": os.environ.get("BENTOML_HOME", str(home / "bentoml")),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        launch.ENV_NPROC: str(run.nproc) if run.nproc > 1 else "",
        RUN_DIR_ENV: str(run_dir),  # every MLflow run of this attempt is tagged with it (tracking/lineage.py)
    }
    return env


@contextlib.contextmanager
def _patched_env(values: dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v != ""})
    for k, v in values.items():
        if v == "":
            os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, prev in old.items():
            if prev is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = prev


def _descendants(pid: int) -> list[int]:
    """Child processes (kfp's task subprocesses and theirs), read from /proc: no extra dependency."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@contextlib.contextmanager
def _stop_children_on_sigterm():
    """`kill` of the runner must not leave a training process running on its own (Ctrl-C reaches the whole
    process group already; SIGTERM reaches only us)."""

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        for pid in reversed(_descendants(os.getpid())):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _owning(run_dir: Path):
    """One `qwenflow run` at a time per run directory (an advisory lock the kernel drops when the process dies), so
    RUNNING MLflow runs of this directory found at start belong to a dead attempt."""

    with open(run_dir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"another `qwenflow run` is using {run_dir}; wait for it, or pass another --run-dir"
            ) from None
        yield


def run_local(run: LocalRun, console=None) -> RunSummary:
    """Run the whole pipeline; returns the summary or raises PipelineFailed naming the failing stage."""
    # lazy: imports kfp, kubernetes (seconds to import)
    import kfp.local
    from rich.live import Live

    from qwenflow.pipelines.qwen25_recipe import build_pipeline

    recipe_arg = str(Path(run.recipe).resolve()) if run.recipe.endswith((".yaml", ".yml")) else run.recipe
    recipe = load_recipe(recipe_arg, list(run.overrides))  # bad recipes fail here, before any process starts
    run_dir = Path(run.run_dir or qwenflow_home() / "runs" / recipe.name).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    events_path, log_path = run_dir / f"events-{stamp}.jsonl", run_dir / f"run-{stamp}.log"
    pipeline = build_pipeline(recipe, list(run.overrides), kubernetes=False)

    # Local runs execute the components in this venv by design; kfp warns about the image name on every task.
    warnings.filterwarnings(
        "ignore", message="You may be attemping to run a task that uses custom", category=RuntimeWarning
    )
    warnings.filterwarnings(
        "ignore", message=r"Task '.*': settings \['display_name'\] have no effect", category=UserWarning
    )
    t0 = time.time()
    tee = LogTee(log_path)
    error: Exception | None = None
    with _patched_env(_env(run, run_dir, events_path)), _owning(run_dir):
        close_dead_attempts(str(run_dir))  # an earlier attempt here died (SIGKILL, lost terminal): close its runs
        kfp.local.init(
            runner=kfp.local.SubprocessRunner(use_venv=False),
            pipeline_root=str(run_dir / "pipeline_root"),
            raise_on_error=True,
        )
        live = (
            Live(
                get_renderable=lambda: view(events_path, t0, tee),
                console=console,
                refresh_per_second=2,
                redirect_stdout=False,
                redirect_stderr=False,
                transient=False,
            )
            if run.live
            else contextlib.nullcontext()
        )
        try:
            with _stop_children_on_sigterm(), live, contextlib.redirect_stdout(tee):
                pipeline(recipe_name=recipe_arg)
        except Exception as e:  # kfp.local raises RuntimeError naming the task; our events carry the cause
            error = e
        finally:
            tee.close()
    summary = summarize(events_path, time.time() - t0, str(run_dir), str(log_path))
    if error is not None:
        failed = summary.failed
        where = f"stage '{failed[0]}' failed: {failed[1]}" if failed else f"the pipeline failed: {error}"
        raise PipelineFailed(
            summary, f"{where}\n(full log: {log_path}; rerun the same command to resume, finished stages are skipped)"
        )
    return summary
