"""The run-time guard for a compiled pipeline: its GPUs, memory and node counts were chosen for the recipe it was
compiled with, so a run whose UI parameters (model_size, overrides) change the model or any stage's resources
would run a different model on the wrong pods (a 72B on a 7B's nodes runs out of memory hours in). start_run
compares the resolved recipe with what was compiled and stops the run at once, naming the difference."""

from __future__ import annotations

import json

from qwenflow.stages import STAGES

# The recipe sections whose `resources` size a compiled step's pod (qwenflow.stages), in pipeline order.
RESOURCE_SECTIONS = tuple(dict.fromkeys(s.resources for s in STAGES.values() if s.resources))


def fingerprint(recipe) -> str:
    """What the compiled resources depend on: the model section and every stage's resources."""
    doc = {
        "recipe": recipe.name,
        "model": recipe.model.model_dump(mode="json"),
        "resources": {s: getattr(recipe, s).resources.model_dump(mode="json") for s in RESOURCE_SECTIONS},
    }
    return json.dumps(doc, sort_keys=True)


def _diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _diff(a.get(k), b.get(k), f"{path}.{k}" if path else k)
            if d:
                return d
        return None
    return None if a == b else (path, a, b)


def check(recipe, compiled: str) -> None:
    """Raise ValueError when `recipe` needs other resources than the pipeline was compiled with ('' = no check:
    local runs have no compiled resources)."""
    if not compiled:
        return
    want, have = json.loads(compiled), json.loads(fingerprint(recipe))
    diff = _diff({k: want[k] for k in ("model", "resources")}, {k: have[k] for k in ("model", "resources")})
    if diff:
        field, was, now = diff
        raise ValueError(
            f"this pipeline was compiled for recipe '{want['recipe']}' ({field} = {was}), but the run's "
            f"parameters make it {now}: its pods were sized for the compiled model; recompile with "
            f"`qwenflow compile --recipe <recipe> --set ...` and upload that pipeline instead"
        )
