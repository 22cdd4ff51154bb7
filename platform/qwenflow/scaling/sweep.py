"""Run a sweep grid: each point a short pre-training run (the platform's own engine) tracked in MLflow.

A point's MLflow run carries its content key; points already finished (this sweep, an earlier one, another
machine sharing the tracking server) are reused, not rerun.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from qwenflow import tracking
from qwenflow.data.pack import pack_corpus
from qwenflow.models import model_size
from qwenflow.recipe import load_recipe
from qwenflow.train.pretrain import run_pretrain

from .fit import EXPERIMENT, POINT_TAG, SWEEP_TAG
from .grid import Grid, Point


def _client():
    # lazy: imports mlflow, pyarrow (seconds to import)
    import mlflow

    client = tracking.client()
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp else mlflow.create_experiment(EXPERIMENT)
    return client, exp_id


def finished_points(client, exp_id: str) -> dict[str, str]:
    """Point key -> run id of every finished sweep point in MLflow."""
    runs = client.search_runs(
        [exp_id], f"tags.`{POINT_TAG}` != '' and attributes.status = 'FINISHED'", max_results=10000
    )
    return {r.data.tags[POINT_TAG]: r.info.run_id for r in runs if "val_loss" in r.data.metrics}


def _link_packed(shared: Path, target: Path) -> None:
    """Every point packs the same corpus at the same length: hard-link one packing instead of re-tokenising."""
    target.mkdir(parents=True, exist_ok=True)
    for f in shared.iterdir():
        if f.is_file() and not (target / f.name).exists():
            os.link(f, target / f.name)


def run_point(point: Point, data_dir: Path, tokenizer_dir: Path, work_dir: Path, packed: Path, client, exp_id) -> dict:

    recipe = load_recipe(point.base_recipe, point.overrides() + [f"tracking.experiment={EXPERIMENT}"])
    size = model_size(recipe.model, point.seq_len)
    n = size.active_params - size.embedding_params
    run = client.create_run(
        exp_id,
        run_name=f"{point.model.name} D={point.tokens} lr={point.learning_rate:g} B={point.batch_size}",
        tags={POINT_TAG: point.key, SWEEP_TAG: point.grid, "qwenflow.stage": "scaling-point"},
    )
    rid = run.info.run_id
    params = {
        "arch": point.model.arch,
        "model": point.model.name,
        "n_params": n,
        "total_params": size.total_params,
        "tokens": point.tokens,
        "learning_rate": point.learning_rate,
        "batch_size": point.batch_size,
        "batch_tokens": point.batch_size * point.seq_len,
        "seq_len": point.seq_len,
        "steps": point.steps,
    }
    for k, v in params.items():
        client.log_param(rid, k, v)
    out = work_dir / point.key
    _link_packed(packed, out / ".packed")
    old_parent = os.environ.get("QWENFLOW_PARENT_RUN_ID")
    os.environ["QWENFLOW_PARENT_RUN_ID"] = rid
    t0 = time.time()
    try:
        run_pretrain(recipe, data_dir, tokenizer_dir, out)
    except Exception:
        client.set_terminated(rid, "FAILED")
        raise
    finally:
        if old_parent is None:
            os.environ.pop("QWENFLOW_PARENT_RUN_ID", None)
        else:
            os.environ["QWENFLOW_PARENT_RUN_ID"] = old_parent
    wall = time.time() - t0
    child = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{rid}'", max_results=1)[0]
    val = child.data.metrics["final_val_loss"]
    client.log_metric(rid, "val_loss", val)
    client.log_metric(rid, "wall_s", wall)
    client.log_metric(rid, "flops", size.flops_per_token * point.tokens)
    client.set_terminated(rid, "FINISHED")
    shutil.rmtree(out, ignore_errors=True)  # the fit needs the metrics, not the weights
    return {**params, "val_loss": val, "wall_s": wall, "run_id": rid, "reused": False}


def run_or_reuse(
    point: Point, data_dir: Path, tokenizer_dir: Path, work_dir: Path, packed: Path, client, exp_id
) -> dict:
    """A point's summary: from MLflow when it already finished there, else trained now."""
    done = finished_points(client, exp_id)
    if point.key in done:
        run = client.get_run(done[point.key])
        return {
            "run_id": run.info.run_id,
            "val_loss": run.data.metrics["val_loss"],
            "reused": True,
            "learning_rate": point.learning_rate,
            "batch_tokens": point.batch_size * point.seq_len,
        }
    return run_point(point, data_dir, tokenizer_dir, work_dir, packed, client, exp_id)


def run_sweep(
    grid: Grid, data_dir: str | Path, tokenizer_dir: str | Path, work_dir: str | Path, models: list[str] | None = None
) -> list[dict]:
    """Run every point of the grid not already finished in MLflow; returns one summary per point."""

    client, exp_id = _client()
    data_dir, tokenizer_dir, work_dir = Path(data_dir), Path(tokenizer_dir), Path(work_dir)
    points = [p for p in grid.points() if not models or p.model.name in models]
    done = finished_points(client, exp_id)
    packed = work_dir / "packed"
    pack_corpus(data_dir, tokenizer_dir, grid.seq_len, packed)
    results: list[dict] = []
    cols = (
        TextColumn("[bold]sweep[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*cols) as bar:
        task = bar.add_task(grid.name, total=len(points))
        for p in points:
            bar.update(task, description=f"{p.model.name} D={p.tokens} lr={p.learning_rate:g} B={p.batch_size}")
            if p.key in done:
                results.append({"model": p.model.name, "run_id": done[p.key], "reused": True})
            else:
                results.append(run_point(p, data_dir, tokenizer_dir, work_dir, packed, client, exp_id))
                done[p.key] = results[-1]["run_id"]
            bar.advance(task)
    return results
