"""What a finished pipeline step shows outside its log: headline numbers as KFP `dsl.Metrics`, a `dsl.Markdown`
card with its MLflow run link, the same numbers on the pipeline's parent run, and (for chat-model stages) the
stage's model logged in its run as an MLflow pyfunc ChatModel. Every stage component calls it
through pipelines/step.py."""

from __future__ import annotations

import contextlib
import math
import os
import time
from importlib.metadata import version
from pathlib import Path

from qwenflow.recipe.loader import read_recipe
from qwenflow.stages import STAGES, SWITCHES
from qwenflow.tracking import _setup, flat_params, stage_run, tracking_uri
from qwenflow.tracking import client as tracking_client
from qwenflow.tracking.datasets import log_inputs_to_run

# Stages whose output is a causal LM that answers chat (the reward model is a classifier: logged as files only).
CHAT_MODEL_STAGES = tuple(s.name for s in STAGES.values() if s.chat_model)
CHAT_MODEL_TAG = "qwenflow.chat_model"  # the run's logged pyfunc chat model URI
MAX_HEADLINE = 12
# Earlier keys first: final/held-out numbers before running losses; system/ metrics never.
_PRIORITY = ("exact_match", "accuracy", "pass@1", "final_val", "val_loss", "eval/", "reward", "loss", "ppl")
UI_WORKFLOW = "machine_learning"
UI_URL_ENV = "QWENFLOW_MLFLOW_UI_URL"  # browsable MLflow address when the tracking URI is cluster-internal


def headline(metrics: dict[str, float]) -> dict[str, float]:
    """At most MAX_HEADLINE finite metrics, the ones a reader looks for first."""
    finite = {
        k: float(v)
        for k, v in metrics.items()
        if not k.startswith("system/") and isinstance(v, (int, float)) and math.isfinite(v)
    }

    def rank(key: str) -> tuple[int, str]:
        return next((i for i, p in enumerate(_PRIORITY) if p in key), len(_PRIORITY)), key

    return {k: finite[k] for k in sorted(finite, key=rank)[:MAX_HEADLINE]}


def run_link(run) -> str:
    """A link to the run in the MLflow UI (or how to open it, for a local store)."""
    base = os.environ.get(UI_URL_ENV) or tracking_uri()
    if base.startswith(("http://", "https://")):
        # MLflow 3.17's UI picks its GenAI or model-training pages from this parameter (else a browser setting).
        return (
            f"{base.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
            f"?workflowType={UI_WORKFLOW}"
        )
    return f"`mlflow ui --backend-store-uri {base}` -> run {run.info.run_id}"


def _stage_run(client, stage: str, result: dict, recipe, parent_run_id: str):
    """The stage's own MLflow run: from its result, else by tags, else one opened now for a stage that has none."""
    run_id = result.get("mlflow_run_id")
    if run_id:
        return client.get_run(run_id)
    exp = client.get_experiment_by_name(recipe.tracking.experiment)
    kfp_run_id = os.environ.get("KFP_RUN_ID", "")
    if exp is not None and kfp_run_id:
        runs = client.search_runs(
            [exp.experiment_id],
            f"tags.`kfp.run_id` = '{kfp_run_id}' and tags.`qwenflow.stage` = '{stage}'",
            max_results=1,
        )
        if runs:
            return runs[0]
    if not parent_run_id or result.get("skipped"):
        return None
    # Data, tokenizer, gate, Bento and deploy steps have no run of their own: record the step's numbers in one.
    import mlflow

    with stage_run(stage, recipe) as run:
        numbers = {
            k: float(v) for k, v in flat_params(result).items() if isinstance(v, (int, float)) and math.isfinite(v)
        }
        if numbers:
            mlflow.log_metrics({k.replace(".", "/"): v for k, v in numbers.items()})
        for k, v in flat_params(result).items():
            if isinstance(v, str) and k not in ("artifact",) and len(v) < 500:
                mlflow.set_tag(f"qwenflow.result.{k}", v)
    return client.get_run(run.info.run_id)


def publish(
    stage: str,
    result: dict,
    *,
    recipe_path: str,
    parent_run_id: str = "",
    metrics=None,
    markdown=None,
    model_dir: str | None = None,
    extra: dict[str, float] | None = None,
) -> dict[str, float]:
    """Report one finished step; returns its headline metrics. `metrics`/`markdown` are KFP output artifacts."""

    recipe = read_recipe(recipe_path)
    _setup(recipe.tracking.experiment)
    client = tracking_client()
    run = _stage_run(client, stage, result, recipe, parent_run_id)
    # Once per stage run: a cache hit hands back the run that trained the model, which already holds it.
    if (
        run is not None
        and model_dir
        and stage in CHAT_MODEL_STAGES
        and not result.get("skipped")
        and CHAT_MODEL_TAG not in run.data.tags
    ):
        client.set_tag(run.info.run_id, CHAT_MODEL_TAG, log_chat_model(run.info.run_id, model_dir))
        run = client.get_run(run.info.run_id)
    numbers = headline({**(run.data.metrics if run is not None else {}), **(extra or {})})
    if metrics is not None:
        for k, v in numbers.items():
            metrics.log_metric(k, v)
    if parent_run_id and numbers:
        client.log_batch(parent_run_id, metrics=[_metric(f"{stage}/{k}", v) for k, v in numbers.items()])
    if parent_run_id and stage == "validate_data":  # the pipeline run's page lists the data it was trained on
        log_inputs_to_run(client, parent_run_id, recipe_name=recipe.name)
    if parent_run_id and stage == "register" and result.get("uri"):
        client.set_tag(parent_run_id, "qwenflow.registered_model", result["uri"])
    if markdown is not None:
        Path(markdown.path).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown.path).write_text(card(stage, result, run, numbers), encoding="utf-8")
    return numbers


def _metric(key: str, value: float):
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    from mlflow.entities import Metric

    return Metric(key=key, value=value, timestamp=int(time.time() * 1000), step=0)


def card(stage: str, result: dict, run, numbers: dict[str, float]) -> str:
    """The Markdown the KFP UI shows for a step: status (the gate's verdict and reasons), MLflow link, numbers."""
    if result.get("skipped"):
        status = "skipped (switched off)"
    elif result.get("cached"):
        status = "from the stage cache"
    elif "passed" in result:  # the quality gate: its verdict and one line per check
        status = "PASSED" if result["passed"] else "FAILED"
    else:
        status = "done"
    lines = [f"### {stage}: {status}", ""]
    if result.get("reasons"):
        lines += [*(f"- {r}" for r in result["reasons"]), ""]
    if run is not None:
        lines += [f"MLflow run: {run_link(run)}", ""]
    if numbers:
        lines += ["| metric | value |", "|---|---|", *[f"| {k} | {v:.6g} |" for k, v in numbers.items()], ""]
    for key in ("uri", "bento", "model_uri"):
        if key in result:
            lines.append(f"- {key}: `{result[key]}`")
    return "\n".join(lines) + "\n"


CHAT_EXAMPLE = {"messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 16}


def chat_model_requirements() -> list[str]:
    """What the chat model imports, at the versions installed here (pinned by requirements.txt); given explicitly
    so MLflow does not load the model to infer them."""
    return [f"{p}=={version(p)}" for p in ("mlflow", "torch", "transformers", "tokenizers", "safetensors")]


def log_chat_model(run_id: str | None, model_dir: str | Path, **log_model_args) -> str:
    """Log a save_pretrained directory into run `run_id` (None: the active run) as an MLflow pyfunc ChatModel
    (qwenflow.tracking.chat_model); returns the model URI. Stage runs and registration both log through here."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    import mlflow

    from qwenflow.tracking.chat_model import HF_ARTIFACT

    with mlflow.start_run(run_id=run_id) if run_id else contextlib.nullcontext():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("chat_model.py")),
            artifacts={HF_ARTIFACT: str(model_dir)},
            input_example=CHAT_EXAMPLE,
            pip_requirements=chat_model_requirements(),
            **log_model_args,
        )
    return info.model_uri


def log_parent_params(client, parent_run_id: str, recipe) -> None:
    """The numbers a reader compares pipeline runs by, as params of the parent run."""
    m = recipe.model
    params = {
        "recipe": recipe.name,
        "model.arch": m.arch,
        "model.hidden_size": m.hidden_size,
        "model.num_layers": m.num_layers,
        "model.vocab_size": m.vocab_size,
        "pretrain.seq_len": recipe.pretrain.seq_len,
        "pretrain.max_steps": recipe.pretrain.max_steps,
        "tokenizer.kind": recipe.tokenizer.kind,
        "eval.suite": recipe.eval.suite,
        "registered_model": recipe.deploy.registered_model,
    }
    for stage in SWITCHES:
        params[f"{stage}.enabled"] = getattr(recipe, stage).enabled
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    from mlflow.entities import Param

    client.log_batch(parent_run_id, params=[Param(k, str(v)) for k, v in params.items()])
