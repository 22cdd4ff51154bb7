"""`qwenflow train pretrain|long-context` (post-training commands are added to `app` by cli/train_post.py)."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from .common import RecipeOpt, SetOpt, clean_errors, console, err_console, get_recipe

app = typer.Typer(help="Training stages: pre-training, long-context extension, post-training.", no_args_is_help=True)

DataOpt = Annotated[Path, typer.Option("--data", help="Prepared data directory (holds corpus/) or a corpus directory")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output model directory (checkpoints go in OUT/checkpoints)")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from the newest complete checkpoint in OUT")]


@contextlib.contextmanager
def stage_errors():
    """Clean exits for the training stages' expected failures, on top of the shared ones."""
    from qwenflow.tracking import TrackingUnavailable

    with clean_errors():
        try:
            yield
        except (TrackingUnavailable, FileExistsError) as e:
            err_console.print(f"[bold red]error:[/] {e}", highlight=False)
            raise typer.Exit(2) from None


@app.command("pretrain")
def pretrain(data: DataOpt, out: OutOpt, recipe: RecipeOpt = "tiny", set_: SetOpt = None,
             tokenizer: Annotated[Path | None, typer.Option(help="Tokenizer directory (default: DATA/tokenizer)")] = None,
             resume: ResumeOpt = False):
    """Pre-train the recipe's model from scratch on the packed corpus."""
    from qwenflow.train.pretrain import run_pretrain

    r = get_recipe(recipe, set_)
    tokenizer = tokenizer or data / "tokenizer"
    with stage_errors():
        path = run_pretrain(r, data, tokenizer, out, resume=resume)
    console.print(f"pre-trained model saved to {path}")


@app.command("long-context")
def long_context(data: DataOpt, out: OutOpt,
                 model: Annotated[Path, typer.Option(help="Pre-trained model directory to extend")],
                 recipe: RecipeOpt = "tiny", set_: SetOpt = None, resume: ResumeOpt = False):
    """Raise the RoPE base and train on long sequences (Qwen2.5-Turbo's progressive schedule when several lengths)."""
    import json

    from qwenflow.train.long_context import run_long_context

    r = get_recipe(recipe, set_)
    with stage_errors():
        path = run_long_context(r, data, model, out, resume=resume)
    summary = json.loads((path / "long_context_summary.json").read_text())
    console.print({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})
    console.print(f"long-context model saved to {path}")
