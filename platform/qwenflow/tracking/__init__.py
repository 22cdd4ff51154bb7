"""MLflow tracking for every stage: one run per stage, nested under the pipeline's parent run when there is one.

Where runs go: MLFLOW_TRACKING_URI if set, else a local SQLite store under QWENFLOW_HOME (default ~/.qwenflow).
`connect()` / `client()` are the one place that resolves it: every module that talks to MLflow goes through them.
The parent run comes from QWENFLOW_PARENT_RUN_ID (the pipeline sets it); KFP_RUN_ID tags the run when present.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qwenflow import dist
from qwenflow.recipe import recipe_to_yaml

from .lineage import DIGEST_ENV, DIGEST_TAG, RUN_DIR_ENV, RUN_DIR_TAG, close_previous_attempts

# mlflow is imported inside functions: it takes 3.7 s to import (measured, `python -X importtime -c "import mlflow"`
# on the 2-core CI machine) against 0.6 s for the whole `qwenflow` CLI, which imports this module.

_last_run: dict[str, str] = {}


def last_run_id() -> str | None:
    """The id of the last run stage_run opened in this process (what a KFP step links to), or None."""
    return _last_run.get("id")


class TrackingUnavailable(RuntimeError):
    """The MLflow server cannot be reached: raised before any compute is spent."""


def qwenflow_home() -> Path:
    home = Path(os.environ.get("QWENFLOW_HOME", Path.home() / ".qwenflow"))
    home.mkdir(parents=True, exist_ok=True)
    return home


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{qwenflow_home() / 'mlflow.db'}"


def ensure_reachable(uri: str | None = None, timeout: float = 5.0) -> str:
    """Fail fast with a clear message if an HTTP tracking server is down."""
    uri = uri or tracking_uri()
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
                if r.status != 200:
                    raise TrackingUnavailable(f"MLflow server at {uri} answered /health with HTTP {r.status}")
        except (urllib.error.URLError, OSError) as e:
            raise TrackingUnavailable(
                f"cannot reach the MLflow server at {uri} ({getattr(e, 'reason', e)}); start it, fix "
                "MLFLOW_TRACKING_URI, or unset it to track into a local SQLite store"
            ) from None
    return uri


def connect() -> str:
    """Resolve the tracking URI (checked reachable) and point mlflow's fluent API at it, registry included. Read
    anew on each call, not cached: a long-lived process (tests, the local runner) may change MLFLOW_TRACKING_URI."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    import mlflow

    uri = ensure_reachable()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def client():
    """An MlflowClient on the resolved tracking URI (tracking and registry), never on whatever the process has."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    from mlflow import MlflowClient

    uri = connect()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# MLflow 3's UI shows an experiment as GenAI (traces, sessions) or model training (runs table). This tag declares
# the kind; the 3.17 UI takes it from its global switch or `?workflowType=machine_learning` in the link, which the
# links qwenflow prints carry (qwenflow.tracking.stage_report.run_link).
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def _setup(experiment: str):
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    import mlflow

    uri = connect()
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        # Local stores keep artifacts under QWENFLOW_HOME; servers choose their own (--artifacts-destination).
        location = None if uri.startswith("http") else (qwenflow_home() / "mlartifacts").as_uri()
        try:
            mlflow.create_experiment(
                experiment, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, "qwenflow": "true"}
            )
        except Exception:  # created concurrently by another stage
            pass
    elif exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client().set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    mlflow.set_experiment(experiment)
    return mlflow


def flat_params(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_params(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, list) else v
    return out


class _MainProcessMlflow:
    """mlflow's fluent API on rank 0; on every other rank each call is a no-op and active_run() is None, so stage
    code that runs on all ranks logs exactly once (a bare mlflow.log_metric elsewhere would start a stray run)."""

    def __getattr__(self, name: str):
        # lazy: imports mlflow, pandas, pyarrow (seconds to import)
        import mlflow

        attr = getattr(mlflow, name)
        if dist.is_main() or not callable(attr):
            return attr
        return lambda *args, **kwargs: None


main_mlflow = _MainProcessMlflow()


@contextlib.contextmanager
def stage_run(
    stage: str, recipe=None, *, experiment: str | None = None, params: dict | None = None, tags: dict | None = None
) -> Iterator[Any]:
    """An MLflow run for one stage, opened by rank 0 only (other ranks get None); logs the resolved recipe and the
    stage's section as params."""
    if not dist.is_main():
        yield None
        return
    experiment = experiment or (recipe.tracking.experiment if recipe is not None else "qwenflow")
    mlflow = _setup(experiment)
    parent = os.environ.get("QWENFLOW_PARENT_RUN_ID")
    run_tags = {"qwenflow.stage": stage, **(tags or {})}
    if os.environ.get("KFP_RUN_ID"):
        run_tags["kfp.run_id"] = os.environ["KFP_RUN_ID"]

    if os.environ.get(RUN_DIR_ENV):  # a later run in the same directory closes this one if its process dies
        run_tags[RUN_DIR_TAG] = os.environ[RUN_DIR_ENV]
    if os.environ.get(DIGEST_ENV):  # opened after the stage finished (publish): the artifact is known
        run_tags[DIGEST_TAG] = os.environ[DIGEST_ENV]
    if parent:
        run_tags["mlflow.parentRunId"] = parent
        close_previous_attempts(client(), parent, stage, [mlflow.get_experiment_by_name(experiment).experiment_id])
    # System metrics (CPU, memory, disk, GPU with pynvml) every 5 s, so short stages get samples too.
    mlflow.set_system_metrics_sampling_interval(5)
    with mlflow.start_run(run_name=stage, tags=run_tags, log_system_metrics=True) as run:
        _last_run["id"] = run.info.run_id
        # lazy: 10 ms to import, needed only here
        from .datasets import log_stage_inputs

        log_stage_inputs(stage, recipe.name if recipe is not None else "")
        if recipe is not None:
            mlflow.log_text(recipe_to_yaml(recipe), "recipe.yaml")
            mlflow.set_tag("qwenflow.recipe", recipe.name)
            section = getattr(recipe, stage.replace("-", "_"), None)
            if section is not None and hasattr(section, "model_dump"):
                mlflow.log_params(
                    {
                        k: v
                        for k, v in flat_params(section.model_dump(mode="json")).items()
                        if not k.startswith("resources.")
                    }
                )
        if params:
            mlflow.log_params(flat_params(params))
        yield run
