"""Timeouts and retries that mean something.

Timeouts: a recipe's `resources.timeout_s` when it sets one, else a default by what the step does: bookkeeping
(MLflow parent run, gate, registry, Helm values) in minutes, data and evaluation in hours, training in days.
Retries: only training stages retry (after a preempted node they resume from their checkpoint); any other step
would fail the same way again. And a failure no retry can fix (a recipe, data or validation error) is remembered on
the shared volume: the retried attempt of that step fails at once with the same reason instead of training again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from qwenflow.stages import HOUR, STEP_TIMEOUT_S, TRAINING


def component_name(task) -> str:
    """The stage a KFP task runs (KFP spells component ids with hyphens: `prepare-data` -> `prepare_data`)."""
    return task.component_spec.name.replace("-", "_")


def step_policy(task, res) -> tuple[int, int]:
    """(timeout in seconds, retries) for one pipeline task with its recipe resources."""
    name = component_name(task)
    default = STEP_TIMEOUT_S.get(name, 2 * HOUR)  # each stage's default (qwenflow.stages); others: hours
    timeout = res.timeout_s if "timeout_s" in res.model_fields_set else default
    return timeout, (res.retries if name in TRAINING else 0)


# ---------------------------------------------------------------- errors no retry can fix


def fatal(e: BaseException) -> bool:
    """Errors from the recipe or the data: the same inputs fail the same way on every attempt."""
    # lazy: imports pandas, pyarrow (seconds to import)
    from qwenflow.data.contracts import DataContractError
    from qwenflow.data.frames import DataError
    from qwenflow.recipe.loader import RecipeError

    return isinstance(e, (ValidationError, RecipeError, DataError, DataContractError, FileExistsError))


def _marker(stage: str) -> Path | None:
    """Only on the cluster (KFP retries there); one marker per pipeline run and step, on the shared volume."""
    work, run = os.environ.get("QWENFLOW_WORK_DIR"), os.environ.get("KFP_RUN_ID")
    return Path(work) / run / f"{stage}.fatal.json" if work and run else None


def remember_if_fatal(stage: str, e: BaseException) -> None:
    path = _marker(stage)
    if path is not None and fatal(e):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"error": f"{type(e).__name__}: {e}"}), encoding="utf-8")


class NotRetried(RuntimeError):
    """An earlier attempt of this step failed on an error a retry cannot fix."""


def refuse_if_fatal_before(stage: str) -> None:
    path = _marker(stage)
    if path is not None and path.is_file():
        reason = json.loads(path.read_text(encoding="utf-8"))["error"]
        raise NotRetried(f"not retried: an earlier attempt failed on an error no retry can fix: {reason}")
