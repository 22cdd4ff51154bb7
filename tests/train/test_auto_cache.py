"""`learning_rate: auto` is resolved before the resume cache keys pre-training: the same scaling-law fit reuses the
cached stage, a newer fit that moves the learning rate trains again (with the new rate, logged with its fit)."""

from __future__ import annotations

import mlflow
import pytest
import yaml

from qwenflow.orchestration import cache
from qwenflow.orchestration.stage import run_stage
from qwenflow.recipe import load_recipe, recipe_to_yaml
from qwenflow.scaling.fit import EXPERIMENT, FIT_TAG, fit_scaling
from tests.scaling.test_fit import synthetic_sweep
from tests.train.conftest import TINY


def _log_fit(sweep) -> str:
    """A real fit of a sweep, tracked as `qwenflow scaling fit` tracks it; returns its run id."""
    fit = fit_scaling(sweep, n_boot=50)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(tags={FIT_TAG: "true"}) as run:
        mlflow.log_text(fit.to_json(), "fit.json")
    return run.info.run_id


def test_a_newer_scaling_fit_reruns_cached_pretraining(tracking, corpus_dir, tiny_tokenizer_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_ROOT, str(tmp_path / "cache"))
    monkeypatch.delenv(cache.ENV_FORCE, raising=False)
    mlflow.set_tracking_uri(tracking)
    recipe = tmp_path / "recipe.yaml"
    overrides = ["pretrain.learning_rate=auto", "pretrain.max_steps=2", "pretrain.eval_every=2"]
    recipe.write_text(recipe_to_yaml(load_recipe("tiny", TINY + overrides)), encoding="utf-8")

    def pretrain(n: int) -> tuple[dict, float]:
        out = tmp_path / f"out{n}"
        inputs = {"data": str(corpus_dir), "tokenizer": str(tiny_tokenizer_dir)}
        result = run_stage("pretrain", recipe_path=str(recipe), inputs=inputs, output=str(out))
        return result, yaml.safe_load((out / "qwenflow_recipe.yaml").read_text())["pretrain"]["learning_rate"]

    sweep = synthetic_sweep()
    _log_fit(sweep)
    first, lr1 = pretrain(1)
    assert not first.get("cached") and isinstance(lr1, float)
    again, lr2 = pretrain(2)
    assert again.get("cached") and lr2 == lr1  # same fit: same numbers, same key

    shifted = sweep.assign(lr=sweep["lr"] * 2)  # every loss's optimum at twice the rate: the fit's lr* doubles
    newer = _log_fit(shifted)
    third, lr3 = pretrain(3)
    assert not third.get("cached")  # the cached model was trained at the old rate
    assert lr3 == pytest.approx(2 * lr1, rel=0.05)
    auto = mlflow.artifacts.load_dict(f"runs:/{third['mlflow_run_id']}/scaling_auto.json")
    assert auto["scaling_fit_run_id"] == newer and auto["auto_learning_rate"] == pytest.approx(lr3)
