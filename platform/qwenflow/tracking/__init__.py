"""MLflow tracking for every stage: one run per stage, nested under the pipeline's parent run when there is one.

Where runs go: MLFLOW_TRACKING_URI if set, else a local SQLite store under QWENFLOW_HOME (default ~/.qwenflow).
The parent run comes from QWENFLOW_PARENT_RUN_ID (the pipeline sets it); KFP_RUN_ID tags the run when present.
"""
from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator


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
                "MLFLOW_TRACKING_URI, or unset it to track into a local SQLite store") from None
    return uri


def _setup(experiment: str):
    import mlflow

    uri = ensure_reachable()
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        # Local stores keep artifacts under QWENFLOW_HOME; servers choose their own (--artifacts-destination).
        location = None if uri.startswith("http") else (qwenflow_home() / "mlartifacts").as_uri()
        try:
            mlflow.create_experiment(experiment, artifact_location=location)
        except Exception:  # created concurrently by another stage
            pass
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


@contextlib.contextmanager
def stage_run(stage: str, recipe=None, *, experiment: str | None = None, params: dict | None = None,
              tags: dict | None = None) -> Iterator[Any]:
    """An MLflow run for one stage; logs the resolved recipe and the stage's section as params."""
    experiment = experiment or (recipe.tracking.experiment if recipe is not None else "qwenflow")
    mlflow = _setup(experiment)
    parent = os.environ.get("QWENFLOW_PARENT_RUN_ID")
    run_tags = {"qwenflow.stage": stage, **(tags or {})}
    if os.environ.get("KFP_RUN_ID"):
        run_tags["kfp.run_id"] = os.environ["KFP_RUN_ID"]
    if parent:
        run_tags["mlflow.parentRunId"] = parent
    with mlflow.start_run(run_name=stage, tags=run_tags) as run:
        if recipe is not None:
            from qwenflow.recipe import recipe_to_yaml

            mlflow.log_text(recipe_to_yaml(recipe), "recipe.yaml")
            mlflow.set_tag("qwenflow.recipe", recipe.name)
            section = getattr(recipe, stage.replace("-", "_"), None)
            if section is not None and hasattr(section, "model_dump"):
                mlflow.log_params({k: v for k, v in flat_params(section.model_dump(mode="json")).items()
                                   if not k.startswith("resources.")})
        if params:
            mlflow.log_params(flat_params(params))
        yield run
