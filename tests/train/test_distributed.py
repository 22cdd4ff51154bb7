"""The same engine under torchrun with 2 processes and DeepSpeed ZeRO-3 (gloo on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import torch
from transformers import AutoModelForCausalLM

from tests.train.conftest import TINY


def test_zero3_two_processes(tracking, corpus_dir, tiny_tokenizer_dir, tmp_path):
    out = tmp_path / "zero3"
    sets = TINY + [
        "pretrain.distributed.strategy=zero3",
        "pretrain.max_steps=3",
        "pretrain.checkpoint_every=2",
        "pretrain.eval_every=100",
    ]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "qwenflow.cli.main",
        "train",
        "pretrain",
        "--data",
        str(corpus_dir),
        "--out",
        str(out),
        "--tokenizer",
        str(tiny_tokenizer_dir),
    ] + [a for kv in sets for a in ("--set", kv)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    assert (out / "checkpoints" / "step-0000002" / "COMPLETE").is_file()  # ZeRO shards saved by both ranks
    model = AutoModelForCausalLM.from_pretrained(str(out))  # full weights gathered from the shards
    assert model.model.embed_tokens.weight.shape == (1024, 128) and torch.isfinite(model.lm_head.weight).all()
    assert model.model.embed_tokens.weight.std() > 0.01

    client = mlflow.MlflowClient(tracking)
    run = client.search_runs(
        [client.get_experiment_by_name("qwenflow-tiny").experiment_id],
        "tags.`qwenflow.stage` = 'pretrain'",
        order_by=["attributes.start_time DESC"],
    )[0]
    assert run.data.params["world_size"] == "2" and run.data.params["grad_accum_steps"] == "1"
    assert run.data.params["engine"] == "DEEPSPEED"
    ds = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/deepspeed_config.json")
    assert ds["zero_optimization"]["stage"] == 3 and ds["train_batch_size"] == 8
