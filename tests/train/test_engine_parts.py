"""LR schedules, the generated DeepSpeed config (checked by DeepSpeed itself) and checkpoint discovery."""

from __future__ import annotations

import pytest

from qwenflow.recipe import load_recipe
from qwenflow.train.checkpoint import latest_checkpoint
from qwenflow.train.deepspeed_config import deepspeed_config, validate
from qwenflow.train.schedule import lr_factor


def test_schedules():
    kw = dict(warmup_ratio=0.1, min_lr_ratio=0.1, decay_ratio=0.2)
    cos = [lr_factor(s, 100, schedule="cosine", **kw) for s in range(100)]
    assert cos[0] == pytest.approx(0.1) and cos[9] == 1.0 and cos[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(cos[9:], cos[10:]))
    wsd = [lr_factor(s, 100, schedule="wsd", **kw) for s in range(100)]
    assert wsd[50] == wsd[79] == 1.0 and wsd[-1] == pytest.approx(0.1, abs=1e-3)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_config_is_valid(stage):
    r = load_recipe(
        "qwen2.5-0.5b",
        [f"pretrain.distributed.strategy=zero{stage}", "pretrain.global_batch_size=32", "pretrain.micro_batch_size=4"],
    )
    cfg = deepspeed_config(r.pretrain, bf16=True, world=1)
    validate(cfg)
    assert cfg["zero_optimization"]["stage"] == stage and cfg["gradient_accumulation_steps"] == 8
    cfg["zero_optimization"]["stage"] = 7
    with pytest.raises(ValueError, match="DeepSpeed rejected"):
        validate(cfg)


def test_batch_that_does_not_split_over_processes_is_refused():
    r = load_recipe("tiny", ["pretrain.distributed.strategy=zero2"])
    with pytest.raises(ValueError, match="not a multiple"):
        deepspeed_config(r.pretrain, bf16=False, world=3)


def test_half_written_checkpoints_are_ignored(tmp_path):
    for step, complete in [(4, True), (8, True), (12, False)]:
        d = tmp_path / f"step-{step:07d}"
        d.mkdir()
        if complete:
            (d / "COMPLETE").write_text(str(step))
    (tmp_path / ".tmp-step-0000016").mkdir()
    assert latest_checkpoint(tmp_path).name == "step-0000008"


def test_compile_auto_only_for_long_dense_runs():
    from qwenflow.models import model_size
    from qwenflow.train.engine import compile_decision

    cpu = {"device_name": "cpu:AVX2", "peak_flops": 1e11}

    def run_flops(r):
        p = r.pretrain
        return p.max_steps * p.global_batch_size * p.seq_len * model_size(r.model, p.seq_len).flops_per_token

    tiny = load_recipe("tiny")
    assert compile_decision(tiny.pretrain, "dense", run_flops(tiny), cpu)[0] is False  # ~10 min: not worth compiling
    wide = load_recipe(
        "tiny",
        ["model.hidden_size=384", "model.num_heads=6", "model.intermediate_size=1152", "pretrain.max_steps=2000"],
    )
    assert compile_decision(wide.pretrain, "dense", run_flops(wide), cpu)[0] is True
    assert compile_decision(wide.pretrain, "moe", run_flops(wide), cpu)[0] is False
    zero = wide.pretrain.model_copy(
        update={"distributed": wide.pretrain.distributed.model_copy(update={"strategy": "zero3"})}
    )
    assert compile_decision(zero, "dense", run_flops(wide), cpu)[0] is False
    forced = tiny.pretrain.model_copy(update={"compile": True})
    assert compile_decision(forced, "dense", 0.0, cpu) == (True, "set in the recipe")
