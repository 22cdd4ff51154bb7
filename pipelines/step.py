"""What every stage component does, in one place: resolve its input artifacts to directories, pick where its output
goes (a model or dataset to the shared PVC by reference, anything else into the artifact), run the stage
(orchestration.stage.run_stage) and report it (tracking.stage_report.publish: KFP metrics, the Markdown card, the
parent run's numbers).

KFP lightweight components embed their function's source, so each component imports this module inside its body;
the step image has qwenflow installed."""

from __future__ import annotations

import os

from qwenflow.orchestration.stage import run_stage
from qwenflow.orchestration.summary import flat_scores
from qwenflow.pipelines.artifact_refs import input_dir, output_dir
from qwenflow.tracking.datasets import DATA_DIR_ENV
from qwenflow.tracking.stage_report import publish

# KFP artifact types large enough to travel by reference (a 7B model is ~15 GB; artifact_refs.py).
BY_REFERENCE = ("system.Model", "system.Dataset")


def run_step(
    stage: str,
    recipe,
    parent_run_id: str,
    kfp_run_id: str,
    output,
    inputs: dict | None = None,
    *,
    metrics=None,
    summary=None,
    scores=None,
) -> dict:
    """Run `stage` into the KFP output artifact `output` and publish it; returns the stage's result.

    `inputs` maps the stage's input names to KFP input artifacts (passed on as their directories, PVC references
    resolved) or to plain values (a model URI, a Bento tag). `metrics` gets the headline numbers, `summary` the
    step's card, `scores` every numeric score of the result (an evaluation report's), which also head the card."""
    by_reference = getattr(output, "schema_title", "") in BY_REFERENCE
    out = output_dir(output, stage, kfp_run_id) if by_reference else output.path
    paths = {name: input_dir(v) if hasattr(v, "path") else v for name, v in (inputs or {}).items()}
    result = run_stage(
        stage,
        recipe_path=recipe.path,
        inputs=paths,
        output=out,
        parent_run_id=parent_run_id,
        kfp_run_id=kfp_run_id,
    )
    if getattr(output, "schema_title", "") == "system.Dataset":
        os.environ[DATA_DIR_ENV] = out  # the step's MLflow run lists the datasets it wrote as inputs
    extra = flat_scores(result) if scores is not None else None
    for name, value in (extra or {}).items():
        scores.log_metric(name, value)
    publish(
        stage,
        result,
        recipe_path=recipe.path,
        parent_run_id=parent_run_id,
        metrics=metrics,
        markdown=summary,
        model_dir=out if by_reference else None,
        extra=extra,
    )
    return result
