"""KFP v2 lightweight components, one per pipeline stage (one file each).

Each file holds a plain function whose body imports qwenflow and calls the core library through
`qwenflow.orchestration.stage.run_stage` (docs/stages.md). `component(name, image)` turns it into a KFP component
on the recipe's base image; `COMPONENTS` lists them in pipeline order.
"""

from __future__ import annotations

import importlib

from kfp import dsl

DEFAULT_BASE_IMAGE = "ghcr.io/qwenflow/train:0.1.0"

COMPONENTS = (
    "start_run",
    "prepare_data",
    "validate_data",
    "tokenizer",
    "pretrain",
    "long_context",
    "sft",
    "reward_model",
    "dpo",
    "grpo",
    "evaluate",
    "gate",
    "register",
    "build_bento",
    "deploy",
    "finish_run",
    "scaling_prepare",
    "scaling_point",
    "scaling_fit",  # the scaling-law sweep (pipelines/scaling_sweep.py)
)


def component(name: str, image: str = DEFAULT_BASE_IMAGE):
    """The KFP component for `name`, running in `image` (the image has qwenflow and kfp installed)."""
    if name not in COMPONENTS:
        raise ValueError(f"unknown component {name!r}; components: {', '.join(COMPONENTS)}")
    fn = getattr(importlib.import_module(f"{__name__}.{name}"), name)
    return dsl.component(fn, base_image=image, install_kfp_package=False)
