"""Stage switches and init_from, through the same run_stage every component calls (no training needed)."""

import pytest

from qwenflow.orchestration.stage import StageFailed, read_result, run_stage
from qwenflow.orchestration.stages import NO_MODEL
from qwenflow.orchestration.start import resolve_recipe
from qwenflow.recipe import recipe_to_yaml


def _recipe_file(tmp_path, **switches):
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe_to_yaml(resolve_recipe("tiny", switches=switches)))
    return str(path)


def _model(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"weights")
    return str(d)


def test_switched_off_stage_hands_its_model_on(tmp_path):
    out = tmp_path / "dpo_out"
    result = run_stage(
        "dpo",
        recipe_path=_recipe_file(tmp_path, dpo=False),
        inputs={"data": str(tmp_path), "model": _model(tmp_path)},
        output=str(out),
    )
    assert result["skipped"] and (out / "model.safetensors").read_bytes() == b"weights"
    assert read_result(out)["skipped"] is True


def test_switched_off_reward_model_hands_on_nothing(tmp_path):
    out = tmp_path / "rm"
    run_stage(
        "reward",
        recipe_path=_recipe_file(tmp_path, reward=False),
        inputs={"data": str(tmp_path), "model": _model(tmp_path)},
        output=str(out),
    )
    assert (out / NO_MODEL).is_file() and not (out / "model.safetensors").exists()


def test_stage_after_switched_off_chain_asks_for_init_from(tmp_path):
    empty = tmp_path / "nothing"
    run_stage(
        "pretrain",
        recipe_path=_recipe_file(tmp_path, pretrain=False),
        inputs={"data": str(tmp_path), "tokenizer": str(tmp_path)},
        output=str(empty),
    )
    assert (empty / NO_MODEL).is_file()
    with pytest.raises(StageFailed, match=r"stage 'sft' failed: .*set sft.init_from"):
        run_stage(
            "sft",
            recipe_path=_recipe_file(tmp_path),
            inputs={"data": str(tmp_path), "model": str(empty)},
            output=str(tmp_path / "sft"),
        )


def test_init_from_replaces_the_input_model_of_a_switched_off_stage(tmp_path):
    start = _model(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(recipe_to_yaml(resolve_recipe("tiny", [f"pretrain.init_from={start}", "pretrain.enabled=false"])))
    out = tmp_path / "base"
    run_stage(
        "pretrain", recipe_path=str(recipe), inputs={"data": str(tmp_path), "tokenizer": str(tmp_path)}, output=str(out)
    )
    assert (out / "model.safetensors").read_bytes() == b"weights"


def test_ui_parameters_resolve_into_the_recipe():
    r = resolve_recipe(
        "tiny", ["sft.learning_rate=5e-4"], model_size="0.5b", data_sources=["shakespeare"], switches={"grpo": False}
    )
    assert r.sft.learning_rate == 5e-4 and r.model.hidden_size == 896 and r.data.sources == ["shakespeare"]
    assert r.grpo.enabled is False and r.dpo.enabled is True
    with pytest.raises(ValueError, match="unknown stage switch 'eval'"):
        resolve_recipe("tiny", switches={"eval": False})
