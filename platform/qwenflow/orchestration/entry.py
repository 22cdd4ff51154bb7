"""What every process of a distributed stage runs (`torchrun -m qwenflow.orchestration.entry STAGE ...`): the same
stage function the KFP component calls in-process, on every rank. Rank 0 writes the stage's result where the
launching step reads it; the other ranks only train."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qwenflow import dist
from qwenflow.recipe.loader import read_recipe
from qwenflow.stages import STAGES

from .launch import RESULT, fit_recipe_to_world
from .stages import RUN


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="qwenflow.orchestration.entry")
    p.add_argument("stage", choices=sorted(STAGES))
    p.add_argument("--recipe", required=True, help="resolved recipe.yaml (or its directory)")
    p.add_argument("--input", action="append", default=[], help="NAME=PATH, e.g. data=/mnt/qwenflow/...")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in --out")
    a = p.parse_args(argv)
    inputs = dict(kv.split("=", 1) for kv in a.input)
    stage = STAGES[a.stage]
    recipe = fit_recipe_to_world(read_recipe(a.recipe), stage.name if stage.switch else None)
    result = RUN[stage.name](recipe, inputs, a.out, a.resume)
    if dist.is_main():
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{RESULT}.tmp"
        tmp.write_text(json.dumps(result if isinstance(result, dict) else {"value": result}, default=str))
        tmp.replace(out / RESULT)


if __name__ == "__main__":
    main()
