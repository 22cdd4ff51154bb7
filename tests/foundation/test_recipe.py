"""Recipe schema: shipped recipes load, overrides apply, and bad recipes fail naming the file and the key."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import yaml

from qwenflow.recipe import RecipeError, list_recipes, load_recipe

SHIPPED = [
    "tiny",
    "qwen2.5-0.5b",
    "qwen2.5-1.5b",
    "qwen2.5-3b",
    "qwen2.5-7b",
    "qwen2.5-14b",
    "qwen2.5-32b",
    "qwen2.5-72b",
    "qwen2.5-moe-a2.7b",
]


def test_every_required_recipe_ships_and_validates():
    assert set(SHIPPED) <= set(list_recipes())
    for name in SHIPPED:
        r = load_recipe(name)
        assert r.name == name


def test_real_recipes_carry_report_defaults():
    r = load_recipe("qwen2.5-7b")
    assert (r.sft.learning_rate, r.sft.min_learning_rate, r.sft.epochs, r.sft.weight_decay, r.sft.grad_clip) == (
        7e-6,
        7e-7,
        2,
        0.1,
        1.0,
    )
    assert r.dpo.learning_rate == 7e-7 and r.dpo.epochs == 1 and r.dpo.optimizer == "onties_adamw"
    assert r.long_context.seq_lens == [32768] and r.long_context.rope_theta == 1e6 and r.pretrain.seq_len == 4096
    assert r.grpo.num_generations == 8 and r.grpo.global_batch_size == 2048
    assert r.pretrain.resources.gpus == 8 and r.pretrain.resources.nodes > 1
    tiny = load_recipe("tiny")
    assert tiny.long_context.seq_lens[-1] == 8 * tiny.pretrain.seq_len
    assert tiny.long_context.rope_theta == 100 * tiny.model.rope_theta


def test_cli_overrides_apply():
    r = load_recipe("tiny", ["sft.learning_rate=1e-5", "grpo.reward_weights.verifier=2", "eval.suite=full"])
    assert r.sft.learning_rate == 1e-5 and r.grpo.reward_weights["verifier"] == 2 and r.eval.suite == "full"


def _bad(tmp_path, patch: dict, name="bad.yaml"):
    raw = yaml.safe_load(open(load_recipe.__globals__["shipped_dir"]() / "tiny.yaml"))

    def merge(d, p):
        for k, v in p.items():
            if isinstance(v, dict) and isinstance(d.get(k), dict):
                merge(d[k], v)
            else:
                d[k] = v

    merge(raw, patch)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    msg = str(e.value)
    assert str(path) in msg, msg
    return msg


@pytest.mark.parametrize(
    "patch, key, words",
    [
        ({"sft": {"learnig_rate": 1e-5}}, "sft.learnig_rate", "unknown key"),
        ({"pretrain": {"max_steps": "many"}}, "pretrain.max_steps", "integer"),
        ({"model": {"num_kv_heads": 3}}, "model", "num_kv_heads (3) must divide num_heads (4)"),
        (
            {"long_context": {"seq_lens": [128]}},
            "long_context.seq_lens[0] (128) must be above pretrain.seq_len (256)",
            "",
        ),
        (
            {"pretrain": {"global_batch_size": 10, "micro_batch_size": 4}},
            "pretrain",
            "must divide global_batch_size (10)",
        ),
        ({"grpo": {"num_generations": 5}}, "grpo", "num_generations (5) must divide global_batch_size (64)"),
        ({"data": {"mixture": {"code": 0.9, "web": 0.3}}}, "data", "must sum to 1"),
        ({"model": {"arch": "moe"}}, "model", "moe section is missing"),
        ({"dpo": {"optimizer": "sgd"}}, "dpo.optimizer", "onties_adamw"),
        ({"tokenizer": {"vocab_size": 8192}}, "tokenizer.vocab_size (8192) exceeds model.vocab_size (4096)", ""),
    ],
)
def test_bad_recipes_name_file_and_key(tmp_path, patch, key, words):
    msg = _bad(tmp_path, patch)
    assert key in msg and words in msg, msg


def test_unknown_recipe_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match="unknown recipe 'nope'.*tiny"):
        load_recipe("nope")
    p = tmp_path / "broken.yaml"
    p.write_text("model: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(p)
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_recipe("tiny", ["sft.learning_rate"])


def test_cli_show_and_validate(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "qwenflow.cli.main", "recipe", "show", "tiny", "--set", "sft.learning_rate=1e-5"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "learning_rate: 1.0e-05" in out
    p = tmp_path / "r.yaml"
    p.write_text(
        textwrap.dedent("""\
        extends: tiny
        name: mine
        model: {num_heads: 6}
    """)
    )
    res = subprocess.run(
        [sys.executable, "-m", "qwenflow.cli.main", "recipe", "validate", str(p)], capture_output=True, text=True
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and str(p) in res.stderr and "must divide hidden_size" in res.stderr


def test_set_on_one_stage_leaves_stages_sharing_a_yaml_anchor_alone():
    # the real-size recipes give every training stage the same `resources: *gpu8` / `distributed: *zero3`
    r = load_recipe("qwen2.5-7b", ["sft.resources.gpus=4", "sft.distributed.strategy=ddp"])
    assert (r.sft.resources.gpus, r.dpo.resources.gpus, r.grpo.resources.gpus) == (4, 8, 8)
    assert (r.sft.distributed.strategy, r.reward.distributed.strategy) == ("ddp", "zero3")


def test_global_batch_must_split_over_the_processes_resources_give():
    with pytest.raises(Exception, match=r"multiple of micro_batch_size \(8\) x 16 processes"):
        load_recipe(
            "qwen2.5-7b",
            ["grpo.global_batch_size=64", "grpo.resources.gpus=8", "grpo.resources.nodes=2", "grpo.micro_batch_size=8"],
        )
