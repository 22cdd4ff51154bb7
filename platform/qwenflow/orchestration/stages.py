"""The stage table: how each pipeline stage calls the core library (docs/stages.md), which recipe sections and
code its result depends on (the resume cache's key), and whether it needs a starting model.

Components, the multi-node job entry point and tests all go through this one table, so a contract change in a
stage function is adapted in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATASET_KINDS = ("corpus", "sft", "rl", "preferences", "eval")


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[..., Any]  # run(recipe, inputs: dict[str, Path], out_dir: Path, resume: bool) -> result
    sections: tuple[str, ...]  # recipe sections the result depends on
    code: tuple[str, ...]  # qwenflow packages whose source is part of the cache key
    switch: str | None = None  # recipe section whose `enabled` turns the stage off (passes its model through)
    resumable: bool = False  # keeps a partial work dir between attempts (training checkpoints)
    trains: bool = False  # may run as a multi-node job when resources.nodes > 1
    cacheable: bool = True  # False when the result depends on outside state (the registry's champion)
    passthrough: bool = True  # switched off, hands its input model on (the reward model has none to hand on)


def _prepare(recipe, inputs, out, resume):
    from .rayjob import on_cluster, run_as_rayjob

    if recipe.data.engine == "ray" and on_cluster():  # a compiled pipeline's step: the corpus runs on a RayCluster
        return run_as_rayjob("prepare-data", recipe, out)
    from qwenflow.data.prepare import prepare_data

    return prepare_data(recipe, out)


def _validate(recipe, inputs, out, resume):
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
        from qwenflow.data.contracts import DataContractError as Err

        raise Err("\n".join(broken), None)
    return results


def _tokenizer(recipe, inputs, out, resume):
    from qwenflow.tokenizer.build import build_tokenizer, iter_parquet_texts

    texts = None
    if recipe.tokenizer.kind == "bpe":
        texts = iter_parquet_texts([Path(inputs["data"]) / "corpus" / "train.parquet"])
    tok = build_tokenizer(recipe, out, texts)
    return {"vocab_size": len(tok)}


def _pretrain(recipe, inputs, out, resume):
    from qwenflow.train.pretrain import run_pretrain

    return {
        "model_dir": str(run_pretrain(recipe, Path(inputs["data"]) / "corpus", inputs["tokenizer"], out, resume=resume))
    }


def _long_context(recipe, inputs, out, resume):
    from qwenflow.train.long_context import run_long_context

    return {
        "model_dir": str(run_long_context(recipe, Path(inputs["data"]) / "corpus", inputs["model"], out, resume=resume))
    }


def _sft(recipe, inputs, out, resume):
    from qwenflow.posttrain.sft import run_sft

    return {"model_dir": str(run_sft(recipe, inputs["data"], inputs["model"], out, resume=resume))}


def _reward(recipe, inputs, out, resume):
    from qwenflow.posttrain.reward import run_reward

    return {"model_dir": str(run_reward(recipe, inputs["data"], inputs["model"], out, resume=resume))}


def _dpo(recipe, inputs, out, resume):
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
    from qwenflow.posttrain.grpo import run_grpo

    reward_dir = inputs.get("reward_model")
    if reward_dir is not None and not _has_model(reward_dir):
        reward_dir = None  # the reward stage was switched off: GRPO uses its verifiers only
    return {
        "model_dir": str(
            run_grpo(recipe, inputs["data"], inputs["model"], out, reward_model_dir=reward_dir, resume=resume)
        )
    }


def _evaluate(recipe, inputs, out, resume):
    from qwenflow.eval.run import evaluate

    return evaluate(inputs["model"], out, suite=recipe.eval.suite, recipe=recipe, data_dir=inputs["data"])


def _gate(recipe, inputs, out, resume):
    import json

    from qwenflow.eval.gates import check_gates
    from qwenflow.eval.registry import champion_metrics

    report = json.loads((Path(inputs["report"]) / "report.json").read_text(encoding="utf-8"))
    # No-regression gates compare against the current champion (none yet: absolute gates only).
    result = check_gates(report, recipe.eval.gates, baseline=champion_metrics(recipe.deploy.registered_model))
    verdict = {"passed": bool(result.passed), "reasons": [str(r) for r in result.reasons]}
    (Path(out) / "gate.json").write_text(json.dumps(verdict, indent=2), encoding="utf-8")
    return verdict


def _register(recipe, inputs, out, resume):
    import json

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


def _bento(recipe, inputs, out, resume):
    from qwenflow.deploy.bento import build_bento

    return {"bento": str(build_bento(inputs["model_uri"], deploy=recipe.deploy))}


def _deploy(recipe, inputs, out, resume):
    """Helm values that serve the registered model with the recipe's deploy settings (validated against the
    chart's schema); `helm upgrade --install` with them is the release step (docs/kubeflow.md)."""
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


_TRAIN_CODE = ("qwenflow.train", "qwenflow.models", "qwenflow.data.pack", "qwenflow.artifacts")
_POST_CODE = ("qwenflow.posttrain", "qwenflow.verifiers", "qwenflow.models", "qwenflow.artifacts")

STAGES: dict[str, Stage] = {
    s.name: s
    for s in [
        Stage("prepare-data", _prepare, ("data",), ("qwenflow.data",)),
        Stage("validate-data", _validate, (), ("qwenflow.data.contracts",)),
        Stage("tokenizer", _tokenizer, ("tokenizer",), ("qwenflow.tokenizer",)),
        Stage("pretrain", _pretrain, ("model", "pretrain"), _TRAIN_CODE, "pretrain", resumable=True, trains=True),
        Stage(
            "long-context", _long_context, ("long_context",), _TRAIN_CODE, "long_context", resumable=True, trains=True
        ),
        Stage("sft", _sft, ("sft",), _POST_CODE, "sft", resumable=True, trains=True),
        Stage("reward", _reward, ("reward",), _POST_CODE, "reward", resumable=True, trains=True, passthrough=False),
        Stage("dpo", _dpo, ("dpo",), _POST_CODE, "dpo", resumable=True, trains=True),
        Stage("grpo", _grpo, ("grpo",), _POST_CODE, "grpo", resumable=True, trains=True),
        Stage("evaluate", _evaluate, ("eval",), ("qwenflow.eval", "qwenflow.verifiers")),
        Stage("gate", _gate, ("eval", "deploy"), ("qwenflow.eval",), cacheable=False),
        Stage("register", _register, ("deploy", "tracking"), ("qwenflow.eval",)),
        Stage("build-bento", _bento, ("deploy",), ("qwenflow.deploy", "qwenflow.serving")),
        Stage("deploy", _deploy, ("deploy",), ("qwenflow.deploy",), "deploy"),
    ]
}

NO_MODEL = ".qwenflow_no_model"


def _has_model(path) -> bool:
    return path is not None and not (Path(path) / NO_MODEL).exists()
