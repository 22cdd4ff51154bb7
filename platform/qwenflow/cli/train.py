"""`qwenflow train STAGE` for each training stage of qwenflow.stages (spelled as CLI words: `long-context`):
pretrain and long-context here, the post-training commands on the same `app` in cli/train_post.py."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from qwenflow.recipe import Recipe
from qwenflow.stages import STAGES

from .common import RecipeOpt, SetOpt, clean_errors, console, err_console, get_recipe

app = typer.Typer(help="Training stages: pre-training, long-context extension, post-training.", no_args_is_help=True)

DataOpt = Annotated[Path, typer.Option("--data", help="Prepared data directory (holds corpus/) or a corpus directory")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output model directory (checkpoints go in OUT/checkpoints)")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from the newest complete checkpoint in OUT")]
NprocOpt = Annotated[
    int,
    typer.Option(
        "--nproc",
        min=1,
        help="Run as N processes under torchrun on this machine (one "
        "per GPU; on CPU, N gloo processes): the launcher a multi-GPU node uses",
    ),
]


def relaunched(nproc: int) -> bool:
    """Re-run this very command as `nproc` torchrun processes and return True (the caller then stops); False when
    one process was asked for or this already is one of the torchrun processes."""

    # lazy: kept out of `qwenflow --help` start-up (23 ms)
    from qwenflow.orchestration.launch import torchrun

    if nproc <= 1 or "RANK" in os.environ:
        return False
    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    with stage_errors():
        torchrun(["qwenflow.cli.main", *argv], nproc, env={"QWENFLOW_FIT_BATCH": "1"})
    return True


def for_world(recipe, section: str):
    """The recipe with micro batches fitted to this run's process count (see orchestration.launch)."""
    # lazy: kept out of `qwenflow --help` start-up (39 ms)
    from qwenflow.orchestration.launch import fit_recipe_to_world

    return fit_recipe_to_world(recipe, section)


def main_prints() -> bool:
    # lazy: kept out of `qwenflow --help` start-up (2 ms)
    from qwenflow import dist

    return dist.is_main()


def stage_recipe(stage: str, nproc: int, recipe: str, set_) -> Recipe | None:
    """The recipe for this process of `stage`'s command, micro batches fitted to the process count; None in the
    process that relaunched the command as `nproc` torchrun processes (the command then returns)."""
    return None if relaunched(nproc) else for_world(get_recipe(recipe, set_), stage)


@contextlib.contextmanager
def stage_errors():
    """Clean exits (one line, exit 2) for the training stages' expected failures, on top of the shared ones: MLflow
    down, an output in the way, a failed launch, no scaling fit for `auto`, a reward function failing under
    reward_on_error=stop."""
    # lazy: imports pandas, pyarrow, scipy (seconds to import)
    from qwenflow.orchestration.launch import LaunchFailed
    from qwenflow.scaling.resolve import NoScalingFit
    from qwenflow.tracking import TrackingUnavailable
    from qwenflow.verifiers.guard import RewardFunctionError

    with clean_errors():
        try:
            yield
        except (TrackingUnavailable, FileExistsError, LaunchFailed, NoScalingFit, RewardFunctionError) as e:
            err_console.print(f"[bold red]error:[/] {e}", highlight=False)
            raise typer.Exit(2) from None


@app.command(STAGES["pretrain"].cli_name)
def pretrain(
    data: DataOpt,
    out: OutOpt,
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    tokenizer: Annotated[Path | None, typer.Option(help="Tokenizer directory (default: DATA/tokenizer)")] = None,
    resume: ResumeOpt = False,
    nproc: NprocOpt = 1,
):
    """Pre-train the recipe's model from scratch on the packed corpus."""
    # lazy: kept out of `qwenflow --help` start-up (7 ms)
    from qwenflow.orchestration.stages import resolve
    from qwenflow.train.pretrain import run_pretrain

    if (r := stage_recipe("pretrain", nproc, recipe, set_)) is None:
        return
    tokenizer = tokenizer or data / "tokenizer"
    if not tokenizer.is_dir():
        err_console.print(
            f"[bold red]error:[/] no tokenizer at {tokenizer}: build it first with `qwenflow tokenizer build "
            f"--out {tokenizer}` (add `--corpus {data}/corpus/train.parquet` for a BPE recipe such as tiny), "
            "or pass --tokenizer DIR",
            highlight=False,
        )
        raise typer.Exit(2)
    with stage_errors():
        r, auto_info = resolve("pretrain", r)  # `auto` learning rate / batch from the latest scaling-law fit
        path = run_pretrain(r, data, tokenizer, out, resume=resume, auto_info=auto_info or None)
    if main_prints():
        console.print(f"pre-trained model saved to {path}")


@app.command(STAGES["long_context"].cli_name)
def long_context(
    data: DataOpt,
    out: OutOpt,
    model: Annotated[Path, typer.Option(help="Pre-trained model directory to extend")],
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    resume: ResumeOpt = False,
    nproc: NprocOpt = 1,
):
    """Raise the RoPE base and train on long sequences (Qwen2.5-Turbo's progressive schedule when several lengths)."""

    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.train.long_context import run_long_context

    if (r := stage_recipe("long_context", nproc, recipe, set_)) is None:
        return
    with stage_errors():
        path = run_long_context(r, data, model, out, resume=resume)
    if not main_prints():
        return
    summary = json.loads((path / "long_context_summary.json").read_text())
    console.print({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})
    console.print(f"long-context model saved to {path}")
