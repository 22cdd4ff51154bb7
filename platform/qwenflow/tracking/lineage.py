"""MLflow that stays true across kills, retries and the resume cache.

- A process killed with SIGKILL cannot close its runs: they would stay RUNNING forever. Whoever next knows that
  attempt is dead closes them as KILLED with the reason in `qwenflow.killed_reason`: a rerun in the same local run
  directory (`close_dead_attempts`, runs tagged `qwenflow.run_dir`), a retry of the same KFP step
  (`close_previous_attempts`, same parent and stage), and the pipeline's last step (`close_open_children`).
- A stage served from the resume cache did no work in this pipeline run, but its artifact is part of it: it gets a
  nested run marked `qwenflow.cached`, pointing at the run that produced the artifact (`qwenflow.source_run_id`) with
  the artifact's sha256 (`qwenflow.artifact_digest`), so every pipeline run lists its whole lineage.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)

RUN_DIR_TAG = "qwenflow.run_dir"
RUN_DIR_ENV = "QWENFLOW_RUN_DIR"  # set by the local runner for every process of one `qwenflow run`
DIGEST_TAG = "qwenflow.artifact_digest"
DIGEST_ENV = "QWENFLOW_ARTIFACT_DIGEST"  # the current step's artifact digest, for a run opened after the stage ends
SOURCE_TAG = "qwenflow.source_run_id"
CACHED_TAG = "qwenflow.cached"
KILLED_TAG = "qwenflow.killed_reason"


def _client():
    from . import client  # the package imports this module: bound at call time

    return client()


def _kill(client, runs, reason: str) -> list[str]:
    closed = []
    for r in runs:
        if r.info.status != "RUNNING":
            continue
        client.set_tag(r.info.run_id, KILLED_TAG, reason[:4000])
        client.set_terminated(r.info.run_id, status="KILLED")
        closed.append(r.info.run_id)
    return closed


def _search(client, filter_string: str):
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    from mlflow.entities import ViewType

    exps = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    return client.search_runs(exps, filter_string, max_results=5000) if exps else []


def close_dead_attempts(run_dir: str) -> list[str]:
    """Runs of earlier `qwenflow run`s in run_dir still RUNNING: their process is gone (the caller holds the run
    directory's lock), so they are closed as KILLED."""
    client = _client()
    runs = _search(client, f"tags.`{RUN_DIR_TAG}` = '{run_dir}' and attributes.status = 'RUNNING'")
    closed = _kill(
        client,
        runs,
        f"the `qwenflow run` in {run_dir} that owned this run ended without closing it "
        "(killed or lost); a later run in the same directory found it still RUNNING",
    )
    if closed:
        log.warning("closed %d MLflow run(s) of a dead earlier attempt as KILLED", len(closed))
    return closed


def close_previous_attempts(client, parent_run_id: str, stage: str, experiment_ids: list[str]) -> list[str]:
    """A stage run opening under a parent that already has a RUNNING run of the same stage: that one is an earlier
    attempt of this step (KFP retried it after its pod died)."""
    runs = client.search_runs(
        experiment_ids,
        f"tags.`mlflow.parentRunId` = '{parent_run_id}' and "
        f"tags.`qwenflow.stage` = '{stage}' and attributes.status = 'RUNNING'",
    )
    return _kill(client, runs, f"a retry of step '{stage}' started: this attempt's process died before it ended")


def close_open_children(client, kfp_run_id: str) -> list[str]:
    """At the end of a pipeline run nothing of it runs any more: stage runs still RUNNING died with their pods."""
    runs = _search(client, f"tags.`kfp.run_id` = '{kfp_run_id}' and attributes.status = 'RUNNING'")
    runs = [r for r in runs if r.data.tags.get("qwenflow.stage") != "pipeline"]
    return _kill(client, runs, "the pipeline run ended while this stage's run was still open: its process died")


def tag_digest(run_id: str | None, digest: str) -> None:
    """Record the artifact's sha256 on the run that produced it (and on a run a later step opens for it)."""
    os.environ[DIGEST_ENV] = digest
    if run_id:
        _client().set_tag(run_id, DIGEST_TAG, digest)


def _source_run(client, stage: str, result: dict, digest: str):
    run_id = result.get("mlflow_run_id")
    if run_id:
        try:
            return client.get_run(run_id)
        except Exception:  # noqa: BLE001 - deleted, or another tracking server: look it up by digest instead
            pass
    runs = _search(client, f"tags.`{DIGEST_TAG}` = '{digest}'")
    runs = [r for r in runs if r.data.tags.get(CACHED_TAG) != "true"]
    return min(runs, key=lambda r: r.info.start_time) if runs else None


def record_cached(stage: str, result: dict, digest: str, recipe, parent_run_id: str) -> str | None:
    """A nested run under the pipeline's parent for a stage served from the cache; returns its id (None without a
    parent run). Its metrics and chat-model tag are the producing run's, so the step reports as it did then."""
    if not parent_run_id:
        return None
    from mlflow.entities import Metric

    from . import _setup  # the package imports this module: bound at call time

    _setup(recipe.tracking.experiment)
    client = _client()
    exp = client.get_experiment_by_name(recipe.tracking.experiment)
    source = _source_run(client, stage, result, digest)
    tags = {
        "mlflow.parentRunId": parent_run_id,
        "qwenflow.stage": stage,
        CACHED_TAG: "true",
        DIGEST_TAG: digest,
        SOURCE_TAG: source.info.run_id if source else "unknown",
        "qwenflow.recipe": recipe.name,
    }
    for env, tag in (("KFP_RUN_ID", "kfp.run_id"), (RUN_DIR_ENV, RUN_DIR_TAG)):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    if source is not None and "qwenflow.chat_model" in source.data.tags:
        tags["qwenflow.chat_model"] = source.data.tags["qwenflow.chat_model"]
    run = client.create_run(exp.experiment_id, run_name=f"{stage} (cached)", tags=tags)
    if source is not None and source.data.metrics:
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in source.data.metrics.items() if not k.startswith("system/")]
        for i in range(0, len(metrics), 1000):
            client.log_batch(run.info.run_id, metrics=metrics[i : i + 1000])
    client.set_terminated(run.info.run_id, status="FINISHED")
    return run.info.run_id
