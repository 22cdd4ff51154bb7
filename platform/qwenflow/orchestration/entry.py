"""Entry point of a multi-node job's processes (torchrun -m qwenflow.orchestration.entry STAGE ...): runs the same
stage function the KFP component would, with resume on, so a restarted job continues from its checkpoints."""
from __future__ import annotations

import argparse

from .stage import read_recipe
from .stages import STAGES


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="qwenflow.orchestration.entry")
    p.add_argument("stage", choices=sorted(STAGES))
    p.add_argument("--recipe", required=True, help="resolved recipe.yaml (or its directory)")
    p.add_argument("--input", action="append", default=[], help="NAME=PATH, e.g. data=/mnt/qwenflow/...")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    inputs = dict(kv.split("=", 1) for kv in a.input)
    STAGES[a.stage].run(read_recipe(a.recipe), inputs, a.out, True)


if __name__ == "__main__":
    main()
