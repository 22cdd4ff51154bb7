"""The Online Merging Optimizer over 2 processes takes the same steps as over 1: with DDP (every rank updates a
whole replica) and with FSDP2 (each rank owns a shard; top-k and sign election are computed on the whole parameter)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("omo_worker.py")


def _run(mode: str, optimizer: str, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(WORKER), mode, str(out), optimizer]
    if mode != "single":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] + cmd[1:]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    return torch.load(out)


@pytest.mark.parametrize("optimizer", ["onties_adamw", "ondare_adamw"])
def test_two_process_steps_equal_one_process(tmp_path, optimizer):
    single = _run("single", optimizer, tmp_path / "single.pt")
    for mode in ("ddp", "fsdp2"):
        multi = _run(mode, optimizer, tmp_path / f"{mode}.pt")
        worst = max(float((single[k] - multi[k]).abs().max()) for k in single)
        assert worst < 1e-6, f"{optimizer} {mode}: weights differ from 1 process by {worst:.2e}"
    moved = max(float((single[k] - _run_init()[k]).abs().max()) for k in single)
    assert moved > 1e-3  # the steps did change the weights


def _run_init() -> dict:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        tie_word_embeddings=False,
    )
    return {n: p.detach() for n, p in Qwen2ForCausalLM(cfg).named_parameters()}
