"""`qwenflow eval long-context`: the long-context check (passkey by length and depth, perplexity) on a saved model.
Importing this module adds the command to the eval app; qwenflow.longctx (torch) is imported only when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import clean_errors, console
from .eval import app as eval_app

SETTINGS = ("none", "yarn", "yarn+dca", "yarn+dca+sparse")  # = qwenflow.longctx.SETTINGS (kept light for --help)


@eval_app.command("long-context")
def long_context(
    model: Annotated[Path, typer.Option("--model", "-m", help="Model directory (e.g. the long-context stage's)")],
    out: Annotated[
        Path, typer.Option(help="Where passkey_report.json, passkey_table.md, passkey_heatmap.png go")
    ] = Path("longctx-out"),
    data: Annotated[
        Path | None,
        typer.Option(help="Prepared data dir: perplexity on its corpus val split (default: held-out essays)"),
    ] = None,
    setting: Annotated[
        list[str] | None, typer.Option("--setting", help=f"Repeatable; default all of {', '.join(SETTINGS)}")
    ] = None,
    multiple: Annotated[
        list[float] | None,
        typer.Option("--multiple", help="Context lengths as multiples of the trained length (default 1 2 4 8)"),
    ] = None,
    depth: Annotated[
        list[float] | None, typer.Option("--depth", help="Needle depths in [0, 1] (default 0 .25 .5 .75 1)")
    ] = None,
    samples: Annotated[int, typer.Option(help="Passkey prompts per (length, depth) cell")] = 4,
    ppl_multiple: Annotated[
        list[float] | None, typer.Option("--ppl-multiple", help="Perplexity lengths as multiples (default 1)")
    ] = None,
    ppl_windows: Annotated[int, typer.Option(help="Held-out windows per perplexity length")] = 4,
    track: Annotated[bool, typer.Option(help="Log to MLflow")] = True,
):
    """Passkey accuracy at 1x-8x the trained length by needle depth, and perplexity, for each long-context setting."""
    with clean_errors():
        # lazy: imports torch, transformers, accelerate (seconds to import)
        from qwenflow.longctx.settings import ABLATIONS

        bad = [s for s in setting or [] if s not in SETTINGS + ABLATIONS]
        if bad:
            raise ValueError(f"unknown setting(s) {', '.join(bad)}; choose from {', '.join(SETTINGS + ABLATIONS)}")
        if any(not 0 <= d <= 1 for d in depth or []):
            raise ValueError(f"--depth must be within [0, 1], got {depth}")
        if samples < 1 or any(m <= 0 for m in (multiple or []) + (ppl_multiple or [])):
            raise ValueError("--samples and every --multiple / --ppl-multiple must be positive")
        # lazy: imports torch, transformers, accelerate (seconds to import)
        from qwenflow.longctx.check import evaluate
        from qwenflow.longctx.passkey import table

        report = evaluate(
            model,
            out,
            settings=setting or SETTINGS,
            multiples=multiple or (1, 2, 4, 8),
            depths=depth or (0.0, 0.25, 0.5, 0.75, 1.0),
            samples=samples,
            data=data,
            ppl_multiples=ppl_multiple or (1,),
            ppl_windows=ppl_windows,
            track=track,
            log=lambda m: console.print(m, highlight=False),
        )
    console.print(table(report), highlight=False)
    console.print(f"heat maps: {out / 'passkey_heatmap.png'}; n = {report['samples']} prompts per cell")
