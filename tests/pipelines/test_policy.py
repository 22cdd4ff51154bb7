"""Timeouts by what a step does, retries only for training, and no retry of an error a retry cannot fix."""

from types import SimpleNamespace

import pytest

from qwenflow.orchestration import policy
from qwenflow.orchestration.stage import StageFailed, run_stage
from qwenflow.recipe import load_recipe
from qwenflow.recipe.base import Resources


def task(name: str):
    return SimpleNamespace(component_spec=SimpleNamespace(name=name))


def test_timeouts_by_kind_and_retries_only_for_training():
    spot = Resources(gpus=8, retries=3)
    assert policy.step_policy(task("sft"), spot) == (7 * 24 * 3600, 3)
    assert policy.step_policy(task("prepare-data"), spot) == (12 * 3600, 0)  # a retry of data prep fails the same way
    assert policy.step_policy(task("gate"), Resources()) == (15 * 60, 0)
    assert policy.step_policy(task("start-run"), Resources(retries=2)) == (15 * 60, 0)
    assert policy.step_policy(task("gate"), Resources(timeout_s=600)) == (600, 0)  # the recipe's own value wins
    # the shipped real-size recipes: training stages retry after preemption, their timeout is days
    r = load_recipe("qwen2.5-7b")
    assert policy.step_policy(task("grpo"), r.grpo.resources) == (7 * 24 * 3600, 3)


def test_a_data_error_is_not_retried(tmp_path, monkeypatch, tiny_model_dir):
    """On the cluster (KFP_RUN_ID, shared work dir), a retried attempt of a step whose recipe or data was bad fails at
    once with the first attempt's reason instead of starting again."""
    monkeypatch.setenv("QWENFLOW_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("KFP_RUN_ID", "run-1")
    monkeypatch.delenv("QWENFLOW_STAGE_CACHE", raising=False)
    recipe = tmp_path / "recipe.yaml"
    from qwenflow.recipe import recipe_to_yaml

    recipe.write_text(recipe_to_yaml(load_recipe("tiny", ["model.vocab_size=1024", "tokenizer.vocab_size=1024"])))
    (tmp_path / "data").mkdir()
    args = dict(
        recipe_path=str(recipe),
        inputs={"data": str(tmp_path / "data"), "model": str(tiny_model_dir)},
        output=str(tmp_path / "out"),
    )
    with pytest.raises(StageFailed, match="DataError: .*no sft dataset here"):
        run_stage("sft", **args)
    assert (tmp_path / "work" / "run-1" / "sft.fatal.json").is_file()
    with pytest.raises(StageFailed, match="NotRetried: not retried: .*DataError: .*no sft dataset here"):
        run_stage("sft", **args)
    assert not policy.fatal(RuntimeError("NCCL timeout")) and policy.fatal(FileExistsError("x"))
