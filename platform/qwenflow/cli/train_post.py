"""`qwenflow train sft|grpo` (and reward|dpo): post-training commands on the `train` app of cli/train.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qwenflow.stages import STAGES

from .common import RecipeOpt, SetOpt, console
from .train import NprocOpt, ResumeOpt, app, main_prints, stage_errors, stage_recipe

FromOpt = Annotated[
    str, typer.Option("--from", help="Starting model: an HF model directory or a models:/NAME@ALIAS URI")
]
DataOpt = Annotated[
    Path, typer.Option("--data", help="Datasets root from `qwenflow data prepare` (sft/, rl/, eval/ ...)")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Output directory; the model lands in OUT/model")]


def _show(model_dir: Path) -> None:
    # lazy: kept out of `qwenflow --help` start-up (2 ms)
    from qwenflow.artifacts import read_lineage

    if not main_prints():
        return
    lin = read_lineage(model_dir)
    for k in ("exact_match_before", "exact_match_after", "reward_start", "reward_end"):
        if k in lin:
            console.print(f"{k}: {lin[k]}")
    console.print(f"model: {model_dir}")


@app.command(STAGES["sft"].cli_name)
def sft(
    from_: FromOpt,
    data: DataOpt,
    out: OutOpt,
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    nproc: NprocOpt = 1,
    resume: ResumeOpt = False,
):
    """Supervised fine-tuning on DATA/sft (assistant-only loss); exact match on DATA/eval before and after."""
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.posttrain.sft import run_sft

    if (r := stage_recipe("sft", nproc, recipe, set_)) is None:
        return
    with stage_errors():
        _show(run_sft(r, data, from_, out, resume=resume))


@app.command(STAGES["grpo"].cli_name)
def grpo(
    from_: FromOpt,
    data: DataOpt,
    out: OutOpt,
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    nproc: NprocOpt = 1,
    resume: ResumeOpt = False,
    reward_model: Annotated[str | None, typer.Option(help="Reward model dir from `qwenflow train reward`")] = None,
):
    """GRPO on DATA/rl with verifier (and reward-model) rewards; exact match on DATA/eval before and after."""
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.posttrain.grpo import run_grpo

    if (r := stage_recipe("grpo", nproc, recipe, set_)) is None:
        return
    with stage_errors():
        _show(run_grpo(r, data, from_, out, reward_model_dir=reward_model, resume=resume))


@app.command(STAGES["reward"].cli_name)
def reward(
    from_: FromOpt,
    data: DataOpt,
    out: OutOpt,
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    nproc: NprocOpt = 1,
    resume: ResumeOpt = False,
):
    """Reward model on DATA/preferences (TRL RewardTrainer); pairwise accuracy on the held-out split."""
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.artifacts import read_lineage
    from qwenflow.posttrain.reward import run_reward

    if (r := stage_recipe("reward", nproc, recipe, set_)) is None:
        return
    with stage_errors():
        model_dir = run_reward(r, data, from_, out, resume=resume)
    if not main_prints():
        return
    lin = read_lineage(model_dir)
    console.print(
        f"pairwise accuracy: {lin['reward/pairwise_accuracy']:.3f} held-out "
        f"({lin['pairs.test']} pairs; {lin['pairs.dropped_identical']} chosen == rejected dropped)"
    )
    console.print(f"model: {model_dir}")


@app.command(STAGES["dpo"].cli_name)
def dpo(
    from_: FromOpt,
    data: DataOpt,
    out: OutOpt,
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    nproc: NprocOpt = 1,
    resume: ResumeOpt = False,
    reward_model: Annotated[
        str | None, typer.Option(help="Reward model dir from `qwenflow train reward`: ranks the sampled answers")
    ] = None,
):
    """DPO on rejection-sampled DATA/rl pairs (or DATA/preferences) with the recipe's optimizer (dpo.optimizer)."""
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.posttrain.dpo import run_dpo

    if (r := stage_recipe("dpo", nproc, recipe, set_)) is None:
        return
    with stage_errors():
        _show(run_dpo(r, data, from_, out, reward_model_dir=reward_model, resume=resume))
