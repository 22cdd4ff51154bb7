"""How each pipeline stage calls the core library (docs/stages.md): `RUN[name](recipe, inputs, out, resume)`.
What the stages are (names, recipe sections, code, switches, wiring) is declared once in qwenflow.stages; this
module only maps each name to its core function. Components, the multi-node job entry point and tests all go
through `RUN`, so a contract change in a stage function is adapted in one place.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qwenflow.stages import DATASET_KINDS, STAGES


def _prepare_data(recipe, inputs, out, resume):
    # lazy: imports kubernetes (seconds to import)
    from .rayjob import on_cluster, run_as_rayjob

    if recipe.data.engine == "ray" and on_cluster():  # a compiled pipeline's step: the corpus runs on a RayCluster
        return run_as_rayjob("prepare_data", recipe, out)
    # lazy: imports pandas, pyarrow, sklearn (seconds to import)
    from qwenflow.data.prepare import prepare_data

    return prepare_data(recipe, out)


def _validate_data(recipe, inputs, out, resume):
    # lazy: imports pandas, pyarrow, numpy (seconds to import)
    from qwenflow.data.contracts import DataContractError, validate_dataset

    results, broken = {}, []
    for kind in DATASET_KINDS:
        directory = Path(inputs["data"]) / kind
        try:
            r = validate_dataset(kind, directory, Path(out) / kind, contract=recipe.data.contracts)
        except DataContractError as e:  # collect every broken dataset before failing, so one run shows them all
            broken.append(str(e))
            r = e.result
        results[kind] = {"success": r.success, "rows": sum(r.rows.values()), "checks": len(r.checks)}
    if broken:
        # lazy: imports pandas, pyarrow, numpy (seconds to import)
        from qwenflow.data.contracts import DataContractError as Err

        raise Err("\n".join(broken), None)
    return results


def _tokenizer(recipe, inputs, out, resume):
    # lazy: 486 ms to import, needed only here
    from qwenflow.tokenizer.build import build_tokenizer, iter_parquet_texts

    texts = None
    if recipe.tokenizer.kind == "bpe":
        texts = iter_parquet_texts([Path(inputs["data"]) / "corpus" / "train.parquet"])
    tok = build_tokenizer(recipe, out, texts)
    return {"vocab_size": len(tok)}


AUTO_FILE = ".qwenflow_scaling_auto.json"  # how `auto` was resolved, in the work dir (hidden: not in the digest)
RESOLVED_RECIPE = ".qwenflow_recipe.yaml"  # the resolved recipe the stage's other processes read


def resolve(name: str, recipe):
    """The recipe as stage `name` runs it, and how it was resolved: pre-training's `auto` learning rate and batch
    come from the latest scaling-law fit. run_stage calls this before it computes the resume-cache key, so the key
    holds the numbers: a newer fit that changes them reruns the stage instead of reusing the old model."""
    p = recipe.pretrain
    if name != "pretrain" or (p.learning_rate != "auto" and p.global_batch_size != "auto"):
        return recipe, {}
    # lazy: imports pandas, pyarrow, scipy (seconds to import)
    from qwenflow.scaling.resolve import resolve_auto

    return resolve_auto(recipe)


def _pretrain(recipe, inputs, out, resume):

    # lazy: 508 ms to import, needed only here
    from qwenflow.train.pretrain import run_pretrain

    auto = Path(out) / AUTO_FILE
    model = run_pretrain(
        recipe,
        Path(inputs["data"]) / "corpus",
        inputs["tokenizer"],
        out,
        resume=resume,
        auto_info=json.loads(auto.read_text(encoding="utf-8")) if auto.is_file() else None,
    )
    return {"model_dir": str(model)}


def _long_context(recipe, inputs, out, resume):
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.train.long_context import run_long_context

    return {
        "model_dir": str(run_long_context(recipe, Path(inputs["data"]) / "corpus", inputs["model"], out, resume=resume))
    }


def _sft(recipe, inputs, out, resume):
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.posttrain.sft import run_sft

    return {"model_dir": str(run_sft(recipe, inputs["data"], inputs["model"], out, resume=resume))}


def _reward(recipe, inputs, out, resume):
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.posttrain.reward import run_reward

    return {"model_dir": str(run_reward(recipe, inputs["data"], inputs["model"], out, resume=resume))}


def _dpo(recipe, inputs, out, resume):
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.posttrain.dpo import run_dpo

    reward_dir = inputs.get("reward_model")
    if reward_dir is not None and not _has_model(reward_dir):
        reward_dir = None  # the reward stage was switched off: the verifiers alone split the samples
    return {
        "model_dir": str(
            run_dpo(recipe, inputs["data"], inputs["model"], out, reward_model_dir=reward_dir, resume=resume)
        )
    }


def _grpo(recipe, inputs, out, resume):
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.posttrain.grpo import run_grpo

    reward_dir = inputs.get("reward_model")
    if reward_dir is not None and not _has_model(reward_dir):
        reward_dir = None  # the reward stage was switched off: GRPO uses its verifiers only
    return {
        "model_dir": str(
            run_grpo(recipe, inputs["data"], inputs["model"], out, reward_model_dir=reward_dir, resume=resume)
        )
    }


def _eval(recipe, inputs, out, resume):
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.eval.run import evaluate

    return evaluate(inputs["model"], out, suite=recipe.eval.suite, recipe=recipe, data_dir=inputs["data"])


def _gate(recipe, inputs, out, resume):

    # lazy: 528 ms to import, needed only here
    from qwenflow.eval.gates import check_gates
    from qwenflow.eval.registry import champion_metrics

    report = json.loads((Path(inputs["report"]) / "report.json").read_text(encoding="utf-8"))
    # No-regression gates compare against the current champion (none yet: absolute gates only).
    result = check_gates(report, recipe.eval.gates, baseline=champion_metrics(recipe.deploy.registered_model))
    verdict = {"passed": bool(result.passed), "reasons": [str(r) for r in result.reasons]}
    (Path(out) / "gate.json").write_text(json.dumps(verdict, indent=2), encoding="utf-8")
    return verdict


def _register(recipe, inputs, out, resume):

    # lazy: 504 ms to import, needed only here
    from qwenflow.eval.registry import register_model

    report = json.loads((Path(inputs["report"]) / "report.json").read_text(encoding="utf-8"))
    version = register_model(
        inputs["model"], recipe.deploy.registered_model, report, experiment=recipe.tracking.experiment
    )
    return {
        "name": recipe.deploy.registered_model,
        "version": str(version),
        "uri": f"models:/{recipe.deploy.registered_model}/{version}",
    }


def _build_bento(recipe, inputs, out, resume):
    # lazy: 524 ms to import, needed only here
    from qwenflow.deploy.bento import build_bento

    return {"bento": str(build_bento(inputs["model_uri"], deploy=recipe.deploy))}


def _deploy(recipe, inputs, out, resume):
    """Helm values that serve the registered model with the recipe's deploy settings (validated against the
    chart's schema); `helm upgrade --install` with them is the release step (docs/kubeflow.md)."""
    # lazy: 534 ms to import, needed only here
    import yaml

    from qwenflow.deploy.helm_values import helm_values

    values = helm_values(inputs["model_uri"], recipe.deploy, recipe=recipe)
    values_file = Path(out) / "values.yaml"
    values_file.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return {
        "model_uri": inputs["model_uri"],
        "bento": inputs["bento"],
        "helm_values": str(values_file),
        "install": f"helm upgrade --install {recipe.deploy.registered_model} helm/qwenflow-serving -f {values_file}",
    }


# name -> the core function: run(recipe, inputs: dict[str, Path], out_dir: Path, resume: bool) -> result
RUN: dict[str, Callable[..., Any]] = {name: globals()[f"_{name}"] for name in STAGES}

NO_MODEL = ".qwenflow_no_model"


def _has_model(path) -> bool:
    return path is not None and not (Path(path) / NO_MODEL).exists()
