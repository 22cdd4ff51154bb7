"""Every training stage as 2 CPU processes (gloo) through the launcher and sharding code a multi-GPU node uses
(`qwenflow train STAGE --nproc 2` -> torchrun -> the stage on every rank), against the same stage as 1 process.

For each stage: exit 0, exactly one MLflow run (rank 0's), one model directory that loads, and the first optimizer
step's loss equal to the 1-process run with the same global batch (within 1e-4) for DDP and ZeRO-3. Smoke-sized:
a 1,024-token vocabulary, a few steps per stage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from qwenflow.models import io

VOCAB = ["tokenizer.vocab_size=1024", "model.vocab_size=1024", "tokenizer.train_bytes=600000"]
DATA = [
    "data.max_bytes_per_source=120000",
    "data.sft_examples=400",
    "data.rl_prompts=64",
    "data.eval_examples=16",
    "data.preference_pairs=64",
    "data.decontaminate=false",
]
PRETRAIN = [
    "pretrain.max_steps=2",
    "pretrain.eval_every=100",
    "pretrain.checkpoint_every=100",
    "pretrain.seq_len=64",
    "pretrain.global_batch_size=8",
    "pretrain.micro_batch_size=4",
]
LONG = [
    "pretrain.seq_len=64",
    "long_context.seq_lens=[256]",
    "long_context.max_steps=2",
    "long_context.checkpoint_every=100",
    "long_context.global_batch_size=4",
    "long_context.micro_batch_size=2",
]
SFT = ["sft.max_steps=2", "sft.logging_steps=1", "sft.global_batch_size=16", "sft.micro_batch_size=8"]
REWARD = ["reward.max_steps=2", "reward.logging_steps=1", "reward.global_batch_size=8", "reward.micro_batch_size=4"]
DPO = [
    "dpo.max_steps=1",
    "dpo.logging_steps=1",
    "dpo.global_batch_size=8",
    "dpo.micro_batch_size=4",
    "dpo.samples_per_prompt=2",
    "dpo.max_prompts=16",
    "dpo.min_pairs=4",
    "dpo.max_new_tokens=4",
]
GRPO = [
    "grpo.max_steps=1",
    "grpo.logging_steps=1",
    "grpo.global_batch_size=8",
    "grpo.micro_batch_size=4",
    "grpo.num_generations=2",
    "grpo.max_completion_length=4",
]


def qwenflow(env: dict, *args: str, sets: list[str] = (), timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "qwenflow.cli.main", *args] + [a for kv in sets for a in ("--set", kv)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-6000:]}"
    return res


@pytest.fixture(scope="module")
def ws(mlflow_server, tmp_path_factory):
    """Prepared data, a tokenizer and a base model (1 process) shared by the module's runs."""
    root = tmp_path_factory.mktemp("dist")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server,
        "QWENFLOW_HOME": str(root / "home"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("QWENFLOW_PARENT_RUN_ID", None)
    data = root / "data"
    qwenflow(env, "data", "prepare", "--recipe", "tiny", "--out", str(data), sets=VOCAB + DATA)
    qwenflow(
        env,
        "tokenizer",
        "build",
        "--out",
        str(data / "tokenizer"),
        "--corpus",
        str(data / "corpus" / "train.parquet"),
        "-r",
        "tiny",
        sets=VOCAB,
    )
    base = root / "base"
    qwenflow(env, "train", "pretrain", "--data", str(data), "--out", str(base), sets=VOCAB + PRETRAIN)
    return {"root": root, "env": env, "data": data, "base": base, "uri": mlflow_server}


def run(ws, stage: str, nproc: int, sets: list[str], *extra: str, tag: str = "", env=None) -> tuple[Path, object]:
    """One stage run in its own MLflow experiment; returns (output dir, the experiment's only run)."""
    name = f"{stage}-{tag}-n{nproc}"
    out = ws["root"] / name
    exp = f"dist-{name}"
    qwenflow(
        {**ws["env"], **(env or {})},
        "train",
        stage,
        "--out",
        str(out),
        "--nproc",
        str(nproc),
        *extra,
        sets=VOCAB + sets + [f"tracking.experiment={exp}"],
    )
    client = mlflow.MlflowClient(ws["uri"])
    runs = client.search_runs([client.get_experiment_by_name(exp).experiment_id])
    assert len(runs) == 1, f"{name}: {len(runs)} MLflow runs, expected exactly rank 0's"
    return out, runs[0]


def first_loss(ws, out: Path, run) -> float:
    metrics = out / "metrics.jsonl"
    if metrics.is_file():  # the pre-training engine's own per-step log
        return next(json.loads(line)["loss"] for line in metrics.read_text().splitlines() if '"loss"' in line)
    client = mlflow.MlflowClient(ws["uri"])
    key = next(k for k in run.data.metrics if k.endswith("/loss"))
    return next(m.value for m in client.get_metric_history(run.info.run_id, key) if m.step == 1)


def same_first_loss(ws, stage, sets, *extra, tag="ddp", check_model=io.load_causal_lm, tol=1e-4):
    env = FP32 if tag == "zero3" else None
    (out1, run1), (out2, run2) = (run(ws, stage, n, sets, *extra, tag=tag, env=env) for n in (1, 2))
    assert run2.data.params.get("world_size", "2") == "2"
    model_dir = out2 / "model" if (out2 / "model").is_dir() else out2
    check_model(model_dir)  # one complete model directory, written by rank 0
    assert not list(out2.parent.glob(f".{out2.name}*.tmp"))
    l1, l2 = first_loss(ws, out1, run1), first_loss(ws, out2, run2)
    assert abs(l1 - l2) < tol, f"{stage} ({tag}): first-step loss {l1} with 1 process, {l2} with 2"
    return out2


# ZeRO-3 is compared in fp32 on every CPU kind: there 1 and 2 processes give the same first loss exactly (measured:
# equal to 1e-12 for pre-training and SFT). Under bf16 autocast (AVX512-BF16 CPUs) the partitioned forward picks
# other bf16 kernels and moves the loss by up to 5e-4 on ~6.9 (relative 7e-5, far inside bf16's 8e-3 resolution);
# the DDP cases below run in the machine's own precision, so the bf16 path is exercised there.
FP32 = {"QWENFLOW_CPU_BF16": "0"}


@pytest.mark.parametrize("strategy", ["ddp", "zero3"])
def test_pretrain(ws, strategy):
    same_first_loss(
        ws,
        "pretrain",
        PRETRAIN + [f"pretrain.distributed.strategy={strategy}"],
        "--data",
        str(ws["data"]),
        tag=strategy,
    )


def test_long_context(ws):
    same_first_loss(ws, "long-context", LONG, "--data", str(ws["data"]), "--model", str(ws["base"]))


@pytest.mark.parametrize("strategy", ["ddp", "zero3"])
def test_sft(ws, strategy):
    # (SFT's first loss measured: DDP x1 6.72953, ZeRO-3 x1 6.72977, ZeRO-3 x2 6.72923)
    out = same_first_loss(
        ws,
        "sft",
        SFT + [f"sft.distributed.strategy={strategy}"],
        "--data",
        str(ws["data"]),
        "--from",
        str(ws["base"]),
        tag=strategy,
    )
    ws.setdefault("sft", out / "model")


def test_reward(ws):
    out = same_first_loss(
        ws, "reward", REWARD, "--data", str(ws["data"]), "--from", str(ws["base"]), check_model=io.load_reward_model
    )
    ws["reward"] = out / "model"


def test_dpo_and_grpo(ws):
    """DPO's first loss is log 2 plus the chosen answers' NLL term whatever the pairs (policy = reference); GRPO
    samples its own batch on each rank, so its first loss depends on the ranks' samples: both are checked for one
    run, one model, clean exit."""
    if "reward" not in ws:
        test_reward(ws)
    start = ws.get("sft", ws["base"])
    out, _ = run(
        ws, "dpo", 2, DPO, "--data", str(ws["data"]), "--from", str(start), "--reward-model", str(ws["reward"])
    )
    io.load_causal_lm(out / "model")
    out, run_ = run(
        ws, "grpo", 2, GRPO, "--data", str(ws["data"]), "--from", str(start), "--reward-model", str(ws["reward"])
    )
    io.load_causal_lm(out / "model")
    assert "reward_model" in run_.data.params["reward_sources"] or run_.data.params["reward_sources"] == "verifier"


def test_grpo_generates_under_zero3(ws):
    """GRPO samples with ZeRO-3-partitioned weights: each generation step gathers the partitions it needs."""
    if "reward" not in ws:
        test_reward(ws)
    sets = GRPO + ["grpo.distributed.strategy=zero3"]
    out, run_ = run(
        ws,
        "grpo",
        2,
        sets,
        "--data",
        str(ws["data"]),
        "--from",
        str(ws["base"]),
        "--reward-model",
        str(ws["reward"]),
        tag="zero3",
    )
    io.load_causal_lm(out / "model")
    assert run_.data.params.get("world_size", "2") == "2"
    assert any(k.endswith("reward") or "reward" in k for k in run_.data.metrics), sorted(run_.data.metrics)
