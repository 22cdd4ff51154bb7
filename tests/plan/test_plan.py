"""The memory plan: every shipped recipe fits its GPUs, a stage that cannot is refused at compile time with one line
naming it, its estimate and what would make it fit; the estimate moves the way sharding, checkpointing and offload
move memory."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qwenflow.plan import PlanRefused, check, plan_recipe
from qwenflow.plan.accelerators import GPU_MEMORY_GIB, UnknownAccelerator, gpu_memory_gib
from qwenflow.plan.estimate import estimate
from qwenflow.plan.workload import workload
from qwenflow.recipe import list_recipes, load_recipe


def test_every_shipped_recipe_fits_its_gpus():
    for name in list_recipes():
        plans = plan_recipe(load_recipe(name))
        assert plans and all(p.fits for p in plans), (name, [p.reason() for p in plans if not p.fits])


def test_compile_refuses_72b_sft_on_one_gpu_with_the_plan_and_a_reason(tmp_path):
    out = tmp_path / "p.yaml"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "qwenflow.cli.main",
            "compile",
            "--recipe",
            "qwen2.5-72b",
            "--set",
            "sft.resources.nodes=1",
            "--set",
            "sft.resources.gpus=1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1 and not out.exists()
    assert "memory plan: qwen2.5-72b" in r.stdout and "long_context" in r.stdout and "estimate" in r.stdout
    assert "1084.9" in r.stdout or "sft " in r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    line = errors[0]
    assert "stage 'sft' needs ~" in line and "1 node(s) x 1 GPU(s)" in line and "79.6 GiB" in line, line
    assert "it fits with sft." in line and "resources.nodes=" in line, line
    needed = float(line.split("needs ~")[1].split()[0])
    assert needed > 1000  # ~1.2 TB of model states on one card


def test_sharding_checkpointing_offload_and_sequence_move_the_estimate():
    r = load_recipe("qwen2.5-7b")
    total = lambda **kw: estimate(workload(r, "sft", section=r.sft.model_copy(update=kw))).total  # noqa: E731
    d = r.sft.distributed
    ddp = total(distributed=d.model_copy(update={"strategy": "ddp"}))
    zero2 = total(distributed=d.model_copy(update={"strategy": "zero2"}))
    zero3 = total(distributed=d)
    assert ddp > zero2 > zero3
    assert total(distributed=d.model_copy(update={"gradient_checkpointing": False})) > zero3
    assert total(distributed=d.model_copy(update={"cpu_offload": True})) < zero3
    assert total(max_seq_len=65536) > zero3 > total(max_seq_len=8192)
    # DPO carries a reference model, GRPO a KV cache for its generation batch
    assert estimate(workload(r, "dpo")).parts["reference"] > 0
    assert estimate(workload(r, "grpo")).phase == "generation"


def test_gpu_memory_from_the_table_or_the_recipe():
    r = load_recipe("qwen2.5-7b")
    assert gpu_memory_gib(r.sft.resources) == (GPU_MEMORY_GIB["NVIDIA-H100-80GB-HBM3"], "NVIDIA-H100-80GB-HBM3")
    assert gpu_memory_gib(r.sft.resources.model_copy(update={"gpu_product": "NVIDIA-H200"}))[0] > 140
    assert gpu_memory_gib(r.sft.resources.model_copy(update={"gpu_memory_gib": 24.0}))[0] == 24.0
    with pytest.raises(UnknownAccelerator, match="gpu_memory_gib"):
        gpu_memory_gib(r.sft.resources.model_copy(update={"gpu_product": "ACME-X1"}))
    small = load_recipe("qwen2.5-7b", ["sft.resources.gpu_memory_gib=24"])
    with pytest.raises(PlanRefused, match=r"^stage 'sft' needs ~[\d.]+ GiB per GPU .* has 24.0 GiB; it fits with"):
        check(plan_recipe(small))
