"""The memory planner's estimate (qwenflow.plan) against the measured peak memory of real training processes on CPU.

Cases: the tiny model and a Qwen2.5-0.5B-shaped model (the public config's 24 layers, hidden 896, 14/2 heads, FFN
4864, 151,936-row tied embedding; random weights), pre-training and SFT, as 1 and 2 processes
(`qwenflow train pretrain|sft --nproc N`). Peak = the largest ru_maxrss of any process of the run (GNU time's %M
over the process tree: the biggest rank). A few optimizer steps each: the peak is reached in the first step that
allocates the optimizer state. Two 0.5B processes use ZeRO-3 (two DDP replicas would not fit this machine's RAM).

    .venv/bin/python benchmarks/memory_plan.py [--only tiny|0.5b] [--work DIR]

Prints one row per case: estimate, measured, ratio (estimate / measured); the planner aims for 0.75-1.25.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {
    "tiny": ["model.vocab_size=1024", "tokenizer.vocab_size=1024"],
    "0.5b": [
        "model.hidden_size=896",
        "model.num_layers=24",
        "model.num_heads=14",
        "model.num_kv_heads=2",
        "model.intermediate_size=4864",
        "model.vocab_size=151936",
        "model.tie_embeddings=true",
        "tokenizer.vocab_size=1024",
    ],
}
STAGE = {
    "pretrain": lambda m: [
        f"pretrain.seq_len={256 if m == '0.5b' else 256}",
        "pretrain.micro_batch_size=2",
        "pretrain.global_batch_size=4",
        "pretrain.max_steps=3",
        "pretrain.checkpoint_every=1000",
        "pretrain.eval_every=1000",
        "pretrain.compile=false",
    ],
    "sft": lambda m: [
        "sft.max_seq_len=256",
        "sft.micro_batch_size=2",
        "sft.global_batch_size=4",
        "sft.max_steps=3",
        "sft.packing=true",
        "sft.checkpoint_every=1000",
    ],
}


def prepare(work: Path) -> dict[str, Path]:
    """A BPE tokenizer and a corpus from the standard library's source, and SFT conversations long enough that
    packing fills every sequence."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from qwenflow.tokenizer.bpe import train_bpe
    from tests.conftest import stdlib_texts

    paths = {"tok": work / "tok", "data": work / "data"}
    if (work / "ready").is_file():
        return paths
    texts = stdlib_texts(600_000)
    train_bpe(texts, vocab_size=1024).save_pretrained(paths["tok"])
    corpus = paths["data"] / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": [t for i, t in enumerate(texts) if i % 10]}), corpus / "train.parquet")
    # one short held-out document: pre-training evaluates it at the end, which on CPU would outlast the steps
    pq.write_table(pa.table({"text": [texts[0][:3000]]}), corpus / "val.parquet")
    chunks = [t[i : i + 600] for t in texts for i in range(0, min(len(t), 6000), 600)][:400]
    sft = paths["data"] / "sft"
    sft.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "messages": [
                [{"role": "user", "content": c[:200]}, {"role": "assistant", "content": c[200:]}] for c in chunks
            ]
        }
    ).to_parquet(sft / "train.parquet")
    (work / "ready").write_text("1")
    return paths


def model_dir(work: Path, name: str, tok: Path) -> Path:
    """A random-init model of the shape, saved as the SFT stage's starting model (built in a child process, so its
    memory is not this process's)."""
    out = work / f"model-{name}"
    if not (out / "config.json").is_file():
        code = (
            "import sys; from qwenflow.artifacts import save_model_dir; from qwenflow.models import build_model;"
            "from qwenflow.recipe import load_recipe; from qwenflow.tokenizer import load_tokenizer;"
            f"r = load_recipe('tiny', {MODELS[name]!r}); t = load_tokenizer({str(tok)!r});"
            "m = build_model(r.model, seed=0, eos_token_id=t.eos_token_id, pad_token_id=t.pad_token_id);"
            f"save_model_dir(m, t, {str(out)!r}, recipe=r, lineage={{'stage': 'init'}})"
        )
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return out


def measure(cmd: list[str], env: dict) -> float:
    """Peak RSS in GiB of the largest process of the run (GNU time: max ru_maxrss over the process tree)."""
    r = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB %M", *cmd], env=env, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} failed:\n{r.stderr[-3000:]}")
    kb = [int(line.split()[1]) for line in r.stderr.splitlines() if line.startswith("MAXRSS_KB")][-1]
    return kb / 1024**2


def estimate(model: str, stage: str, nproc: int, strategy: str) -> float:
    from qwenflow.plan.estimate import estimate as est
    from qwenflow.plan.workload import workload
    from qwenflow.recipe import load_recipe

    recipe = load_recipe("tiny", MODELS[model] + STAGE[stage](model) + [f"{stage}.distributed.strategy={strategy}"])
    return est(workload(recipe, stage, device="cpu", world=nproc, bf16=False)).total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=list(MODELS), action="append")
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    p.add_argument("--stage", choices=["pretrain", "sft"], action="append")
    p.add_argument("--procs", type=int, choices=[1, 2], action="append")
    a = p.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="memory_plan-"))
    work.mkdir(parents=True, exist_ok=True)
    paths = prepare(work)
    env = {
        **os.environ,
        "QWENFLOW_CPU_BF16": "0",
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "QWENFLOW_HOME": str(work / "home"),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    rows = []
    print(f"{'model':6} {'stage':9} {'procs':5} {'strategy':8} {'estimate GiB':>12} {'measured GiB':>12} {'ratio':>6}")
    for model in a.only or list(MODELS):
        start = model_dir(work, model, paths["tok"])
        for stage in a.stage or ("pretrain", "sft"):
            for nproc in a.procs or (1, 2):
                strategy = "zero3" if (model == "0.5b" and nproc > 1) else "ddp"
                out = work / f"out-{model}-{stage}-{nproc}"
                sets = MODELS[model] + STAGE[stage](model) + [f"{stage}.distributed.strategy={strategy}"]
                cmd = [
                    sys.executable,
                    "-m",
                    "qwenflow.cli.main",
                    "train",
                    stage,
                    "--data",
                    str(paths["data"]),
                    "--out",
                    str(out),
                    "--nproc",
                    str(nproc),
                ]
                cmd += ["--tokenizer", str(paths["tok"])] if stage == "pretrain" else ["--from", str(start)]
                cmd += [x for kv in sets for x in ("--set", kv)]
                subprocess.run(["rm", "-rf", str(out)], check=True)
                est = estimate(model, stage, nproc, strategy)
                try:
                    measured = measure(cmd, env)
                except RuntimeError as e:  # e.g. killed by the kernel's OOM killer on a shared machine
                    print(f"{model:6} {stage:9} {nproc:5} {strategy:8} {est:12.2f}   failed: {str(e)[-300:]!r}")
                    rows.append({"model": model, "stage": stage, "processes": nproc, "failed": str(e)[-2000:]})
                    continue
                row = {
                    "model": model,
                    "stage": stage,
                    "processes": nproc,
                    "strategy": strategy,
                    "estimate_gib": round(est, 3),
                    "measured_gib": round(measured, 3),
                    "ratio": round(est / measured, 3),
                }
                rows.append(row)
                print(
                    f"{model:6} {stage:9} {nproc:5} {strategy:8} {est:12.2f} {measured:12.2f} {est / measured:6.2f}",
                    flush=True,
                )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
