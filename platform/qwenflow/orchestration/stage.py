"""What every KFP component does around its stage function: read the recipe, nest MLflow under the pipeline's
parent run, honour `enabled` and `init_from`, skip on a resume-cache hit, run (locally, or as a multi-node
Kubeflow training job), record events, and name the stage in any failure."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path

from qwenflow.artifacts import sha256_path
from qwenflow.recipe import recipe_to_yaml
from qwenflow.recipe.loader import read_recipe
from qwenflow.stages import STAGES
from qwenflow.tracking import lineage, model_source, tracking_uri

from . import cache, events, launch, policy
from .stages import AUTO_FILE, NO_MODEL, RESOLVED_RECIPE, RUN, _has_model, resolve

RESULT_FILE = ".qwenflow_result.json"


class StageFailed(RuntimeError):
    """A stage raised; the message names the stage and the cause (the pipeline and the CLI show it as is)."""


def read_result(output: str | Path) -> dict:
    path = Path(output) / RESULT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _resolve_start(source: str, dest: Path) -> str:
    """init_from: a local HF directory as is; a registry or remote URI downloaded (and sha-checked) once."""
    if Path(source).is_dir():
        return source
    return str(model_source.resolve(source, dest))


def _write_result(output: Path, result) -> dict:
    result = result if isinstance(result, dict) else {"value": result}
    output.mkdir(parents=True, exist_ok=True)
    (output / RESULT_FILE).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return result


def run_stage(
    name: str,
    *,
    recipe_path: str,
    inputs: dict[str, str | None],
    output: str | Path,
    parent_run_id: str = "",
    kfp_run_id: str = "",
) -> dict:
    """Run one stage into `output` (a directory) and return its result dict (also stored in output)."""
    stage = STAGES[name]
    output = Path(output)
    if parent_run_id:
        os.environ["QWENFLOW_PARENT_RUN_ID"] = parent_run_id
    if kfp_run_id:
        os.environ["KFP_RUN_ID"] = kfp_run_id
    events.emit(name, "start", output=str(output))
    t0 = time.perf_counter()

    os.environ.pop(lineage.DIGEST_ENV, None)
    try:
        policy.refuse_if_fatal_before(name)  # a retry after a recipe/data error: fail at once, do not rerun it
        recipe = read_recipe(recipe_path)
        section = getattr(recipe, name) if stage.switch else None
        model_in = inputs.get("model")

        if section is not None and not section.enabled:
            # Switched off: pass the model through so the rest of the chain runs unchanged.
            source = getattr(section, "init_from", None) or (
                model_in if stage.passthrough and _has_model(model_in) else None
            )
            if source:
                cache.link_tree(_resolve_start(source, output.parent / f"{output.name}.start"), output)
            else:
                output.mkdir(parents=True, exist_ok=True)
                (output / NO_MODEL).write_text(f"{name} was switched off and had no model to pass on\n")
            events.emit(name, "skipped", seconds=time.perf_counter() - t0, output=str(output))
            return _write_result(output, {"skipped": True, "model_dir": str(output)})

        if start := getattr(section, "init_from", None):
            inputs = {**inputs, "model": _resolve_start(start, output.parent / f"{output.name}.start")}
        elif "model" in inputs and not _has_model(model_in):
            raise ValueError(
                f"no model to start from: the stages before {name} were switched off; set "
                f"{name}.init_from to a model directory or models:/ URI"
            )
        paths = {k: (str(v) if v else None) for k, v in inputs.items()}
        if data := paths.get("data"):  # qwenflow.tracking.datasets logs the datasets the stage reads as MLflow inputs
            os.environ["QWENFLOW_DATA_DIR"] = data

        recipe, resolved = resolve(name, recipe)  # `auto` -> numbers, before the cache key sees the recipe
        root = cache.cache_root()
        entry = None
        if root is not None and stage.cacheable:
            entry = cache.StageCache(root, name, cache.stage_key(stage, recipe, paths))
            hit = None if cache.forced(name) else entry.lookup()
            if hit is not None:
                cache.link_tree(entry.dir / hit["result"].get("artifact", "."), output)
                result = _record_cached(name, hit["result"], entry, recipe, parent_run_id)
                events.emit(name, "cached", seconds=time.perf_counter() - t0, output=str(output), key=entry.dir.name)
                return _write_result(output, result)

        work = entry.prepare(keep_partial=stage.resumable) if entry else _work_dir(name, output)
        if resolved:  # the stage's processes (torchrun, a TrainJob) read the resolved recipe, not `auto` again
            (Path(work) / AUTO_FILE).write_text(json.dumps(resolved, default=str), encoding="utf-8")
            recipe_path = str(Path(work) / RESOLVED_RECIPE)
            Path(recipe_path).write_text(recipe_to_yaml(recipe), encoding="utf-8")
        resources = section.resources if stage.trains and section is not None else None  # training stages have one
        started = time.perf_counter()
        nproc = launch.processes(resources) if stage.trains else 1
        if resources is not None and resources.nodes > 1 and not os.environ.get(launch.ENV_NPROC):
            # lazy: imports kubernetes (880 ms)
            from .trainjob import run_as_trainjob

            result = run_as_trainjob(name, recipe, recipe_path, paths, work, resources)
        elif nproc > 1:
            result = launch.run_stage_processes(name, recipe_path, paths, Path(work), nproc, stage.resumable)
        else:
            result = RUN[name](recipe, paths, work, stage.resumable)
        compute_s = time.perf_counter() - started
        result = result if isinstance(result, dict) else {"value": result}
        from qwenflow.tracking import last_run_id  # the stage's MLflow run: KFP UI links and metrics use it

        if last_run_id():
            result.setdefault("mlflow_run_id", last_run_id())
        # A stage may save its model in a sub-directory of its work dir (and return that path): that is the artifact.
        produced = Path(result.get("model_dir") or work).resolve()
        work_abs = Path(work).resolve()
        result["artifact"] = produced.relative_to(work_abs).as_posix() if produced.is_relative_to(work_abs) else "."
        if entry:
            entry.commit(result)
        cache.link_tree(work_abs / result["artifact"], output)
        _record_digest(result, entry, output, stage)
        result = _write_result(output, result)
        events.emit(name, "done", seconds=compute_s, output=str(output), result=result)
        _before_process_exit()
        return result
    except Exception as e:
        reason = f"{type(e).__name__}: {e}"
        policy.remember_if_fatal(name, e)
        events.emit(name, "failed", seconds=time.perf_counter() - t0, error=reason)
        _before_process_exit()
        _mark_parent_failed(parent_run_id, name, reason)
        raise StageFailed(f"stage '{name}' failed: {reason}") from e


def _record_cached(name: str, result: dict, entry, recipe, parent_run_id: str) -> dict:
    """A nested run in this pipeline run for a stage served from the cache, pointing at the run that produced it."""

    digest = cache.content_digest(entry.dir)
    record = lineage.record_cached(name, result, digest, recipe, parent_run_id)
    result = {**result, "artifact_digest": digest, "cached": True}
    if record:
        result["source_run_id"], result["mlflow_run_id"] = result.get("mlflow_run_id"), record
    return result


def _record_digest(result: dict, entry, output: Path, stage) -> None:
    """The artifact's sha256 on the stage's MLflow run: the one the cache's commit computed, or for a stage that is
    never cached (the gate's small verdict) hashed here; without the cache nothing big is hashed again."""

    digest = cache.content_digest(entry.dir) if entry else (None if stage.cacheable else sha256_path(output))
    if digest:
        result["artifact_digest"] = digest
        lineage.tag_digest(result.get("mlflow_run_id"), digest)


def _before_process_exit() -> None:
    """In a KFP executor process the stage is the last real work (kfp then writes its output file and exits), so
    freeze the heap: the interpreter's final collection then skips torch/transformers/TRL's objects, which took
    2-4 s per stage process (~30 s of orchestration overhead per tiny run). Never in a long-lived process."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name == "kfp.dsl.executor_main":
        gc.freeze()


def _mark_parent_failed(parent_run_id: str, stage: str, reason: str) -> None:
    """Tag the pipeline's parent run with the failing stage and why, so finish-run closes it as FAILED even when the
    stage died before opening its own MLflow run. Best effort: the stage's own error is what gets raised."""
    if not parent_run_id:
        return
    try:
        # lazy: imports mlflow, pandas, pyarrow (seconds to import)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri())
        client.set_tag(parent_run_id, "qwenflow.failed_stage", stage)
        client.set_tag(parent_run_id, "qwenflow.failure", reason[:4000])
    except Exception:  # noqa: BLE001 - tracking down must not hide the real failure
        pass


def _work_dir(name: str, output: Path) -> Path:
    """Without the local cache: train on the shared volume when the cluster mounts one (retries after a
    preemption resume from its checkpoints), else beside the output artifact."""
    shared = os.environ.get("QWENFLOW_WORK_DIR")
    if shared and os.environ.get("KFP_RUN_ID"):
        work = Path(shared) / os.environ["KFP_RUN_ID"] / name
    else:  # beside the output, which receives (hard links to) the artifact when the stage is done
        work = output.parent / f"{output.name}.work"
    work.mkdir(parents=True, exist_ok=True)
    return work
