"""The first and last steps of a pipeline run: resolve the recipe with the UI's parameters and open the MLflow
parent run every stage nests under; close it when the run ends."""

from __future__ import annotations

import os
import time
from pathlib import Path

from qwenflow.stages import START, SWITCHES

from . import events

PIPELINE_STAGE_TAG = "pipeline"


def resolve_recipe(
    recipe_name: str,
    overrides: list[str] | None = None,
    model_size: str = "",
    data_sources: list[str] | None = None,
    switches: dict[str, bool] | None = None,
):
    """The recipe a run uses: shipped name or file, `--set` overrides, then the UI's size, sources and switches."""
    # lazy: 548 ms to import, needed only here
    from qwenflow.recipe import load_recipe
    from qwenflow.recipe.loader import RecipeError

    recipe = load_recipe(recipe_name, list(overrides or []))
    if model_size:
        size_recipe = (
            model_size
            if model_size.startswith(("qwen", "tiny")) or model_size.endswith(".yaml")
            else f"qwen2.5-{model_size}"
        )
        try:
            recipe.model = load_recipe(size_recipe).model
        except RecipeError as e:
            raise RecipeError(f"model_size {model_size!r}: {e}") from None
    if data_sources:
        recipe.data.sources = list(data_sources)
    for name, on in (switches or {}).items():
        if name not in SWITCHES:
            raise ValueError(f"unknown stage switch {name!r}; switchable stages: {', '.join(SWITCHES)}")
        getattr(recipe, name).enabled = bool(on)
    return recipe


def start_pipeline(recipe, recipe_out: str | Path, kfp_run_id: str) -> str:
    """Write the resolved recipe artifact and open the parent MLflow run; returns its id."""

    # lazy: 519 ms to import, needed only here
    from qwenflow.recipe import recipe_to_yaml
    from qwenflow.tracking import _setup, tracking_uri
    from qwenflow.tracking import client as tracking_client

    t0 = time.perf_counter()
    out = Path(recipe_out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(recipe_to_yaml(recipe), encoding="utf-8")
    mlflow = _setup(recipe.tracking.experiment)
    client = tracking_client()
    exp = mlflow.get_experiment_by_name(recipe.tracking.experiment)

    # lazy: 623 ms to import, needed only here
    from qwenflow.tracking.lineage import RUN_DIR_ENV, RUN_DIR_TAG

    tags = {"qwenflow.stage": PIPELINE_STAGE_TAG, "qwenflow.recipe": recipe.name, "kfp.run_id": kfp_run_id}
    if os.environ.get(RUN_DIR_ENV):  # local runs: a rerun in the same directory closes it if this attempt dies
        tags[RUN_DIR_TAG] = os.environ[RUN_DIR_ENV]
    run = client.create_run(exp.experiment_id, run_name=f"{recipe.name} pipeline", tags=tags)
    client.log_text(run.info.run_id, recipe_to_yaml(recipe), "recipe.yaml")
    # lazy: 607 ms to import, needed only here
    from qwenflow.tracking.stage_report import log_parent_params

    log_parent_params(client, run.info.run_id, recipe)  # stages add their headline metrics as they finish
    events.emit(
        START,
        "done",
        seconds=time.perf_counter() - t0,
        result={
            "parent_run_id": run.info.run_id,
            "experiment_id": exp.experiment_id,
            "tracking_uri": tracking_uri(),
            "recipe": recipe.name,
        },
    )
    return run.info.run_id


def finish_pipeline(kfp_run_id: str, state: str = "") -> str:
    """Close the parent run of `kfp_run_id`: FAILED when KFP says so or any stage run failed, else FINISHED."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    import mlflow

    from qwenflow.tracking import client as tracking_client

    client = tracking_client()
    runs = mlflow.search_runs(
        search_all_experiments=True, output_format="list", filter_string=f"tags.`kfp.run_id` = '{kfp_run_id}'"
    )
    parents = [r for r in runs if r.data.tags.get("qwenflow.stage") == PIPELINE_STAGE_TAG]
    if not parents:
        return "no parent run"
    failed = (
        state.upper() in ("FAILED", "ERROR", "CANCELED", "CANCELLED")
        or any("qwenflow.failed_stage" in p.data.tags for p in parents)
        or any(r.info.status == "FAILED" for r in runs if r.data.tags.get("qwenflow.stage") != PIPELINE_STAGE_TAG)
    )
    status = "FAILED" if failed else "FINISHED"
    # lazy: 620 ms to import, needed only here
    from qwenflow.tracking.lineage import close_open_children

    if close_open_children(client, kfp_run_id):  # a stage's process died with its run open
        status = "FAILED"
    for p in parents:
        client.set_terminated(p.info.run_id, status=status)
    return status
