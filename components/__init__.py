"""KFP v2 lightweight components, one per pipeline stage (one file each).

Each file holds a plain function whose body imports qwenflow and, for a stage, makes one call:
`qwenflow.pipelines.step.run_step`, which runs `qwenflow.orchestration.stage.run_stage` and reports the step
(docs/stages.md). `component(name, image)` turns it into a KFP component
on the recipe's base image; `COMPONENTS` lists them in pipeline order, named as in qwenflow.stages.
"""

from __future__ import annotations

import importlib

from kfp import dsl

from qwenflow.stages import STEPS

DEFAULT_BASE_IMAGE = "ghcr.io/qwenflow/train:0.1.0"

# One per pipeline step, named after its stage (qwenflow.stages), then the scaling-law sweep's
# (pipelines/scaling_sweep.py).
COMPONENTS = (*STEPS, "scaling_prepare", "scaling_point", "scaling_fit")


def component(name: str, image: str = DEFAULT_BASE_IMAGE):
    """The KFP component for `name`, running in `image` (the image has qwenflow and kfp installed)."""
    if name not in COMPONENTS:
        raise ValueError(f"unknown component {name!r}; components: {', '.join(COMPONENTS)}")
    fn = getattr(importlib.import_module(f"{__name__}.{name}"), name)
    return dsl.component(fn, base_image=image, install_kfp_package=False)
