"""GPU figures per training stage: the qwen2.5-0.5b architecture (random weights) through pre-training, SFT, DPO
and GRPO, a few optimizer steps each, every stage run by the platform's own command (`qwenflow train STAGE ...
--nproc 1`, in-process, as the launcher runs a one-process stage) with bf16 and the recipe's stage code. Prints per
stage: tokens/s, MFU against the card's dense bf16 peak, peak GPU memory against the memory plan's estimate
(qwenflow.plan: what `qwenflow compile` checks) and the ratio; the goal line is pre-training MFU >= 40% at seq 4096.

    python benchmarks/gpu_stages.py --out gpu_stages.json       # one H100/H200, about 5 minutes, no network
    python benchmarks/gpu_stages.py --smoke --out smoke.json    # the same code path on CPU, tiny model (CI test)

What it measures (benchmarks/stage_probe.py wraps each stage's process): tokens/s = training tokens (token ids
entering the policy's embedding with autograd on, padding included) between the end of the first optimizer step and
the end of the last, over that time, so the first step's warm-up is left out and GRPO's generation between steps is
in; MFU = tokens/s x training FLOPs per token of the policy at the measured mean sequence length
(qwenflow.models.model_size: 6 x matmul parameters + attention) / peak. DPO's reference forward and GRPO's
generation are not counted as FLOPs, nor is recomputation under activation checkpointing (on in the post-training
stages, as the recipe sets it), so their MFU is a lower bound. Peak memory: torch.cuda.max_memory_allocated of the
stage's process (its whole life: loading, training, saving); on CPU the process's peak RSS. The estimate is the
memory plan's for one process of the stage with the same overrides; `qwenflow model info --gpus 1 --zero 0` gives
only its model states (weights, gradients, AdamW), printed on the RESULT line for reference.

Inputs are made here, in a temporary directory, in the platform's dataset formats: a byte-level BPE tokenizer
(qwenflow.tokenizer.bpe, as the tiny recipe trains) on synthetic text, the corpus, sft/, rl/ and preferences/
sets of random words sized to the sequence lengths below, and a random-weight model directory from the platform's
builder (qwenflow.models.io) that SFT, DPO and GRPO start from. The model keeps Qwen2.5's 151,936-entry vocabulary
(the LM head's cost is the real one); the tokenizer uses the first few thousand ids. Each stage gets `--set`
overrides: a few steps, one GPU (`resources.gpus=1`), strategy ddp (one process: nothing to shard; DeepSpeed is not
installed there), batch and lengths that fit an 80 GB card; everything else is the shipped recipe. Tracking is the
platform's default, a local MLflow SQLite store (under the temporary QWENFLOW_HOME).

On the device machine the packages the host lacks (TRL, datasets, MLflow, pydantic, ...) travel as wheels:
`bash benchmarks/gpu_wheels.sh` fills .whl/ here first (50 MiB). Then one `run` call, carry [".whl"], timeout_s 600:

    set -o pipefail; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site-packages .whl/*.whl && export PYTHONPATH=/tmp/site-packages || exit 3; \
      PYTHONUNBUFFERED=1 python3 benchmarks/gpu_stages.py --out $OUT/gpu_stages.json 2>&1 | tee $OUT/gpu_stages.log

The folder's name must hold `site-packages`: dill (under datasets' fingerprinting, which SFT and GRPO go through)
pickles a module by value when its file is outside the interpreter's prefix and no `site-packages` is in its path,
and that failed on pyarrow's types (`Can't pickle <class 'MonthDayNano'>`) in a copy of the host's environment.
The run keeps to 480 s (`--budget-s`): a stage gets what is left, so the table is written before the call's limit;
a stage that runs out of GPU memory is run again with half the micro batch (same global batch). `--set
STAGE.KEY=VALUE` adds an override to one stage (e.g. `--set pretrain.compile=true`).
It writes $OUT/gpu_stages.json (the table) and one log per stage beside it ($OUT/gpu_stages.<stage>.log).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))  # the checkout's qwenflow, installed or not

GOAL_MFU = 0.40  # pre-training at seq 4096 (issue: GPU figures)
STAGES = ("pretrain", "sft", "dpo", "grpo")


@dataclass
class Sizes:
    """One mode's recipe and the stage sizes (tokens per sequence, sequences per micro batch and per step)."""

    recipe: str
    vocab: int  # BPE tokenizer size
    bpe_texts: int  # texts of 400 words the tokenizer is trained on
    model_sets: list[str]
    pretrain: dict
    sft: dict
    dpo: dict
    grpo: dict
    timeout_s: int  # per stage
    budget_s: int  # the whole run: a stage gets what is left of it (the device call has a hard limit)


# On an 80 GB card: pre-training 4 x 4096 tokens per micro batch without activation checkpointing (the memory plan
# puts it at 56 GiB, 28 of them the fp32 logits over the 151,936-token vocabulary); the post-training stages keep the
# recipe's checkpointing, with 2-8K-token micro batches (under 12 GiB each in the plan).
GPU = Sizes(
    recipe="qwen2.5-0.5b",
    vocab=4096,
    bpe_texts=3000,
    model_sets=[],
    pretrain={"seq": 4096, "micro": 4, "glob": 8, "steps": 10, "checkpointing": False},
    sft={"seq": 2048, "micro": 4, "glob": 8, "steps": 6},
    dpo={"seq": 1024, "micro": 2, "glob": 4, "steps": 6},
    grpo={"prompt": 128, "completion": 256, "generations": 8, "micro": 8, "glob": 16, "steps": 3},
    timeout_s=240,
    budget_s=480,
)
SMOKE = Sizes(
    recipe="tiny",
    vocab=1024,
    bpe_texts=300,
    model_sets=["tokenizer.vocab_size=1024", "model.vocab_size=2048"],  # model > tokenizer, as on the GPU
    pretrain={"seq": 64, "micro": 4, "glob": 8, "steps": 3, "checkpointing": False},
    sft={"seq": 64, "micro": 4, "glob": 8, "steps": 3},
    dpo={"seq": 48, "micro": 2, "glob": 4, "steps": 3},
    grpo={"prompt": 24, "completion": 8, "generations": 2, "micro": 4, "glob": 8, "steps": 3},
    timeout_s=300,
    budget_s=1200,
)


def stage_sets(sizes: Sizes) -> dict[str, list[str]]:
    """The `--set` overrides of each stage run (on top of the shipped recipe)."""
    from qwenflow.recipe import load_recipe

    p, s, d, g = sizes.pretrain, sizes.sft, sizes.dpo, sizes.grpo
    out = {
        "pretrain": [
            "data.engine=local",  # packs in this process: the real-size recipes' Ray engine is not installed there
            f"pretrain.seq_len={p['seq']}",
            f"pretrain.micro_batch_size={p['micro']}",
            f"pretrain.global_batch_size={p['glob']}",
            f"pretrain.max_steps={p['steps']}",
            "pretrain.learning_rate=3e-4",
            "pretrain.compile=false",
            "pretrain.distributed.strategy=ddp",
            f"pretrain.distributed.gradient_checkpointing={str(p['checkpointing']).lower()}",
            "pretrain.checkpoint_every=100000",
            "pretrain.eval_every=100000",
        ],
        "sft": [
            f"sft.max_seq_len={s['seq']}",
            f"sft.micro_batch_size={s['micro']}",
            f"sft.global_batch_size={s['glob']}",
            f"sft.max_steps={s['steps']}",
            "sft.packing=false",  # rows of the full length already; the estimate assumes max_seq_len per row
            "sft.distributed.strategy=ddp",
            "sft.checkpoint_every=100000",
            "sft.logging_steps=1",
        ],
        "dpo": [
            f"dpo.max_seq_len={d['seq']}",
            f"dpo.micro_batch_size={d['micro']}",
            f"dpo.global_batch_size={d['glob']}",
            f"dpo.max_steps={d['steps']}",
            "dpo.distributed.strategy=ddp",
            # Rejection sampling of a random model finds no (pass, fail) pairs: a short one, then preferences/
            "dpo.max_prompts=2",
            "dpo.samples_per_prompt=2",
            "dpo.max_new_tokens=4",
            "dpo.checkpoint_every=100000",
            "dpo.logging_steps=1",
        ],
        "grpo": [
            f"grpo.max_seq_len={g['prompt'] + g['completion']}",
            f"grpo.max_completion_length={g['completion']}",
            f"grpo.num_generations={g['generations']}",
            f"grpo.micro_batch_size={g['micro']}",
            f"grpo.global_batch_size={g['glob']}",
            f"grpo.max_steps={g['steps']}",
            "grpo.distributed.strategy=ddp",
            "grpo.reward_weights={verifier: 1.0}",  # no reward model here
            "grpo.checkpoint_every=100000",
            "grpo.logging_steps=1",
        ],
    }
    for name in out:
        # one process: a stage whose recipe asks for several GPUs is pinned to one (the schema checks the batch)
        one = [f"{name}.resources.gpus=1"] if getattr(load_recipe(sizes.recipe), name).resources.gpus > 1 else []
        out[name] = sizes.model_sets + out[name] + one
    return out


# ---------------------------------------------------------------- inputs


class Words:
    """Random pseudo-words (Zipf-distributed) whose token count per word the tokenizer measures once."""

    def __init__(self, seed: int = 0, n: int = 4000) -> None:
        import numpy as np

        self.rng = np.random.default_rng(seed)
        syll = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
        self.vocab = ["".join(self.rng.choice(syll, size=self.rng.integers(1, 4))) for _ in range(n)]
        p = 1.0 / (np.arange(1, n + 1) ** 1.1)
        self.p = p / p.sum()
        self.tokens_per_word = 1.0

    def text(self, n_words: int) -> str:
        return " ".join(self.rng.choice(self.vocab, size=max(1, n_words), p=self.p))

    def for_tokens(self, tokens: int) -> str:
        return self.text(int(tokens / self.tokens_per_word))

    def calibrate(self, tok) -> None:
        sample = self.text(20000)
        self.tokens_per_word = len(tok(sample)["input_ids"]) / 20000


def make_inputs(sizes: Sizes, work: Path, log) -> dict[str, Path]:
    """Tokenizer, datasets and a random-weight model directory under `work`; returns their paths."""
    from qwenflow.data import schemas
    from qwenflow.models import io
    from qwenflow.recipe import load_recipe
    from qwenflow.tokenizer.bpe import train_bpe

    t0 = time.perf_counter()
    data, words = work / "data", Words()
    tok = train_bpe((words.text(400) for _ in range(sizes.bpe_texts)), vocab_size=sizes.vocab, max_bytes=4_000_000)
    tok.save_pretrained(data / "tokenizer")
    words.calibrate(tok)
    log(f"tokenizer: BPE, {len(tok)} tokens, {words.tokens_per_word:.2f} tokens per word")

    p = sizes.pretrain
    rows_needed = p["glob"] * (p["steps"] + 2)
    doc_tokens = min(p["seq"], 2048)
    n_docs = math.ceil(rows_needed * p["seq"] * 1.2 / doc_tokens)

    def corpus(n: int) -> list[dict]:
        return [
            {"text": words.for_tokens(doc_tokens), "source": "synthetic", "domain": "web", "license": "none"}
            for _ in range(n)
        ]

    (data / "corpus").mkdir(parents=True)
    schemas.write_parquet(corpus(n_docs), data / "corpus" / "train.parquet", schemas.CORPUS)
    schemas.write_parquet(
        corpus(math.ceil(p["micro"] * p["seq"] * 1.5 / doc_tokens)), data / "corpus" / "val.parquet", schemas.CORPUS
    )

    def fitted(limit: int, parts: list[tuple[str, float]]) -> list[list[dict]]:
        """Messages, one per (role, share of `limit`), shrunk until the chat-templated conversation fits `limit`."""
        budget = limit
        while budget > 0:
            msgs = [[{"role": role, "content": words.for_tokens(int(budget * share))}] for role, share in parts]
            ids = tok.apply_chat_template([m[0] for m in msgs], tokenize=True, return_dict=True)["input_ids"]
            if len(ids) <= limit:
                return msgs
            budget -= max(1, len(ids) - limit + budget // 20)
        raise ValueError(f"no conversation fits {limit} tokens")

    s = sizes.sft
    sft_rows = []
    for _ in range(s["glob"] * (s["steps"] + 1)):
        u, a = fitted(s["seq"], [("user", 0.25), ("assistant", 0.75)])
        sft_rows.append({"messages": u + a, "task": "chat", "answer": ""})
    (data / "sft").mkdir()
    schemas.write_parquet(sft_rows, data / "sft" / "train.parquet", schemas.DATASETS["sft"].schema)

    d = sizes.dpo
    pairs = []
    for _ in range(max(64, d["glob"] * (d["steps"] + 1))):  # 64: dpo.min_pairs, so preferences/ is used whole
        u, a = fitted(d["seq"], [("user", 0.25), ("assistant", 0.75)])  # rejected: as many other words
        b = [{"role": "assistant", "content": words.text(len(a[0]["content"].split()))}]
        pairs.append({"prompt": u, "chosen": a, "rejected": b, "task": "chat", "criterion": "synthetic"})
    (data / "preferences").mkdir()
    pref_schema = schemas.DATASETS["preferences"].schema
    schemas.write_parquet(pairs, data / "preferences" / "train.parquet", pref_schema)
    schemas.write_parquet(pairs[:8], data / "preferences" / "test.parquet", pref_schema)

    g = sizes.grpo
    prompts = [
        # the generation prompt (`<|im_start|>assistant`) adds a few tokens
        {"prompt": fitted(g["prompt"] - 8, [("user", 1.0)])[0], "task": "arithmetic", "answer": "42"}
        for _ in range(g["glob"] // g["generations"] * (g["steps"] + 1))
    ]
    (data / "rl").mkdir()
    schemas.write_parquet(prompts, data / "rl" / "prompts.parquet", schemas.PROMPTS)

    recipe = load_recipe(sizes.recipe, sizes.model_sets)
    model = io.build_causal_lm(recipe.model, seed=0, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    n_params = sum(p.numel() for p in model.parameters())
    io.save(model, work / "model", tokenizer=tok, recipe=recipe, lineage={"stage": "random weights (gpu_stages)"})
    del model
    log(f"inputs: {n_params / 1e6:.1f}M-parameter model, datasets in {data} ({time.perf_counter() - t0:.0f} s)")
    return {"data": data, "tokenizer": data / "tokenizer", "model": work / "model"}


# ---------------------------------------------------------------- running and measuring


def stage_command(stage: str, paths: dict[str, Path], work: Path, sizes: Sizes, sets: list[str]) -> list[str]:
    out = work / "runs" / stage
    if stage == "pretrain":
        args = ["--data", str(paths["data"]), "--tokenizer", str(paths["tokenizer"])]
    else:
        args = ["--from", str(paths["model"]), "--data", str(paths["data"])]
        if stage == "dpo":  # the Online Merging Optimizer's base: the start itself (zero delta, full cost)
            sets = [*sets, f"dpo.merge_base={paths['model']}"]
    args += ["--out", str(out), "--recipe", sizes.recipe, "--nproc", "1"]
    return ["train", stage, *args, *[a for kv in sets for a in ("--set", kv)]]


def child_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "QWENFLOW_PARENT_RUN_ID")}
    env.pop("QWENFLOW_NPROC", None)
    env.update(
        QWENFLOW_HOME=str(work / "home"),  # MLflow's SQLite store and artifacts: the platform's default, kept here
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "platform"), os.environ.get("PYTHONPATH")])),
    )
    return env


def steady(steps: list[dict]) -> tuple[float, float, float, float]:
    """(tokens/s, token-weighted mean sequence length, seconds, tokens) from the end of the first step to the end of
    the last; NaN with fewer than two steps."""
    if len(steps) < 2:
        return math.nan, math.nan, math.nan, math.nan
    later = steps[1:]
    tokens = sum(s["tokens"] for s in later)
    seconds = steps[-1]["t"] - steps[0]["t"]
    seq = sum(s["token_seq"] for s in later) / tokens if tokens else math.nan
    return (tokens / seconds if seconds > 0 else math.nan), seq, seconds, tokens


def estimate_gib(recipe_name: str, sets: list[str], stage: str, gpu: bool) -> tuple[float, str]:
    """The memory plan's peak for one process of this stage (qwenflow.plan.estimate) and what sets it."""
    from qwenflow.plan.estimate import estimate
    from qwenflow.plan.workload import workload
    from qwenflow.recipe import load_recipe

    est = estimate(workload(load_recipe(recipe_name, sets), stage, device="gpu" if gpu else "cpu", world=1))
    return est.total, est.phase


def flops_per_token(recipe_name: str, model_sets: list[str], seq: float) -> float:
    from qwenflow.models import model_size
    from qwenflow.recipe import load_recipe

    spec = load_recipe(recipe_name, model_sets).model
    lo, hi = model_size(spec, 1).flops_per_token, model_size(spec, 2).flops_per_token
    return lo + (hi - lo) * (seq - 1)  # linear in the sequence length (attention), exact at any mean


def model_states_gib(sizes: Sizes) -> float:
    """What `qwenflow model info --gpus 1 --zero 0` prints as the total: weights, gradients, AdamW, no activations."""
    from qwenflow.models import training_memory_gb
    from qwenflow.recipe import load_recipe

    return training_memory_gb(load_recipe(sizes.recipe, sizes.model_sets).model, gpus=1, zero_stage=0)["total_gb"]


def peak_flops(device: str) -> tuple[float, str]:
    """The card's dense bf16 peak (qwenflow.train.hardware's table); on a CPU a measured fp32 matmul rate."""
    import torch

    from qwenflow.train.hardware import gpu_peak, matmul_flops

    if device != "cpu":
        peak = gpu_peak(device)
        if peak:
            return peak, f"{device} dense bf16 peak {peak / 1e12:.0f} TFLOP/s"
        measured = matmul_flops(torch.bfloat16, 8192, device="cuda")
        return measured, f"{device}: not in the peak table; measured bf16 matmul {measured / 1e12:.0f} TFLOP/s"
    measured = matmul_flops(torch.float32, 512, seconds=0.3)
    return measured, f"cpu: measured fp32 matmul {measured / 1e9:.1f} GFLOP/s"


def engine_figures(run_dir: Path) -> dict:
    """Pre-training's own per-step tokens/s and MFU (engine metrics.jsonl), steps 2..n, as a cross-check."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "tokens_per_s" in r][1:]
    if not rows:
        return {}
    return {
        "engine_tokens_per_s": sum(r["tokens_per_s"] for r in rows) / len(rows),
        "engine_mfu": sum(r["mfu"] for r in rows) / len(rows),
    }


def run_stage(stage: str, sizes: Sizes, paths, work: Path, sets: list[str], *, log_path: Path, log, timeout: float):
    probe_json = work / f"probe-{stage}.json"
    probe_json.unlink(missing_ok=True)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "stage_probe.py"), str(probe_json), "--"]
    cmd += stage_command(stage, paths, work, sizes, sets)
    shutil.rmtree(work / "runs" / stage, ignore_errors=True)  # a retry starts afresh
    t0 = time.perf_counter()
    row: dict = {"stage": stage, "sets": sets}
    timeout = min(timeout, sizes.timeout_s)
    with open(log_path, "w") as f:
        f.write(" ".join(cmd) + "\n\n")
        f.flush()
        try:
            code: int | str = subprocess.run(
                cmd, stdout=f, stderr=subprocess.STDOUT, env=child_env(work), timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            code = f"timed out after {timeout:.0f} s"
    row["wall_s"] = time.perf_counter() - t0
    probe = json.loads(probe_json.read_text()) if probe_json.is_file() else {}
    if code != 0 or not probe:
        text = log_path.read_text(errors="replace")
        tail = text.splitlines()[-25:]
        row["error"] = f"exit {code}: " + "\n".join(tail)
        row["out_of_memory"] = "out of memory" in text.lower()
        log(f"{stage}: FAILED ({code}) after {row['wall_s']:.0f} s; last lines of {log_path}:\n" + "\n".join(tail))
        return row
    tps, seq, seconds, tokens = steady(probe["steps"])
    row.update(
        device=probe["device"],
        steps=len(probe["steps"]),
        measured_s=seconds,
        tokens=tokens,
        tokens_per_s=tps,
        mean_seq=seq,
        peak_memory_gib=probe["peak_memory_gib"],
        peak_reserved_gib=probe["peak_reserved_gib"],
        memory_kind=probe["memory_kind"],
    )
    if stage == "pretrain":
        row.update(engine_figures(work / "runs" / "pretrain"))
    log(
        f"{stage}: {len(probe['steps'])} steps, {tps:,.0f} tokens/s, peak {probe['peak_memory_gib']:.2f} GiB "
        f"({row['wall_s']:.0f} s)"
    )
    return row


def with_retries(stage: str, sets: list[str], micro: int, attempt, deadline: float, log) -> dict:
    """attempt(sets, timeout) -> row, within what is left until `deadline` (15 s kept for the table); a run out of
    GPU memory is tried again with half the micro batch (same global batch, twice the accumulation)."""
    retries: list[str] = []
    while True:
        left = deadline - time.perf_counter() - 15
        if left < 30:
            log(f"{stage}: skipped, the time budget is spent")
            return {"stage": stage, "sets": sets, "error": "skipped: the time budget is spent", "retries": retries}
        row = attempt(sets, timeout=left)
        if not row.get("out_of_memory") or micro == 1:
            return {**row, "retries": retries}
        retries.append(f"micro_batch_size {micro}: out of memory")
        micro //= 2
        sets = [*sets, f"{stage}.micro_batch_size={micro}"]
        log(f"{stage}: out of memory; again with {stage}.micro_batch_size={micro}")


def finish_row(row: dict, sizes: Sizes, peak: float, gpu: bool) -> None:
    est, phase = estimate_gib(sizes.recipe, row["sets"], row["stage"], gpu)
    row.update(estimate_gib=est, estimate_phase=phase)
    if "error" in row:
        return
    row["ratio"] = row["peak_memory_gib"] / est
    tps, seq = row["tokens_per_s"], row["mean_seq"]
    row["mfu"] = flops_per_token(sizes.recipe, sizes.model_sets, seq) * tps / peak if math.isfinite(tps) else math.nan


def table(rows: list[dict]) -> str:
    head = f"{'stage':9s} {'tokens/s':>11s} {'MFU':>7s} {'peak GiB':>9s} {'estimate GiB':>13s} {'ratio':>6s}  notes"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['stage']:9s} {'FAILED':>11s} {'':7s} {'':9s} {r['estimate_gib']:13.2f} {'':6s}")
            continue
        note = f"{r['steps']} steps, mean seq {r['mean_seq']:.0f}, estimate's peak: {r['estimate_phase']}"
        if "engine_mfu" in r:
            note += f"; engine: {r['engine_tokens_per_s']:,.0f} tokens/s, MFU {r['engine_mfu']:.1%}"
        lines.append(
            f"{r['stage']:9s} {r['tokens_per_s']:11,.0f} {r['mfu']:7.1%} {r['peak_memory_gib']:9.2f} "
            f"{r['estimate_gib']:13.2f} {r['ratio']:6.2f}  {note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="the tiny recipe on CPU: the same path, in about a minute")
    ap.add_argument("--out", type=Path, required=True, help="JSON table to write; stage logs go beside it")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    ap.add_argument("--work", type=Path, help="working directory (default: a temporary one, removed at the end)")
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="STAGE.KEY=VALUE",
        help="extra recipe override for that stage's run, after the built-in ones (e.g. pretrain.compile=true); "
        "model.* and tokenizer.* go to every stage and the inputs",
    )
    ap.add_argument(
        "--recipe",
        help="another shipped recipe at the mode's sizes (e.g. --smoke --recipe qwen2.5-0.5b: the real architecture "
        "and recipe on a CPU, with --set to shrink the batches)",
    )
    ap.add_argument("--budget-s", type=float, help="seconds for the whole run (default: 480 on a GPU, 1200 --smoke)")
    a = ap.parse_args(argv)
    stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        ap.error(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    sizes = SMOKE if a.smoke else GPU
    bad = [kv for kv in a.sets if "=" not in kv or kv.split(".", 1)[0] not in (*STAGES, "model", "tokenizer")]
    if bad:
        ap.error(f"--set {bad[0]}: expected STAGE.KEY=VALUE with STAGE one of {', '.join(STAGES)}, model, tokenizer")
    shared = [kv for kv in a.sets if kv.split(".", 1)[0] in ("model", "tokenizer")]
    if a.recipe:  # its own model and tokenizer sections, not the tiny sizes'
        sizes = replace(sizes, recipe=a.recipe, model_sets=[])
    sizes = replace(sizes, model_sets=sizes.model_sets + shared)
    a.budget_s = a.budget_s or sizes.budget_s
    import torch

    if not a.smoke and not torch.cuda.is_available():
        print("no CUDA device visible: run on a GPU machine, or pass --smoke for the CPU path", file=sys.stderr)
        return 2

    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", flush=True)

    a.out.parent.mkdir(parents=True, exist_ok=True)
    work = a.work or Path(tempfile.mkdtemp(prefix="gpu_stages-"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"torch {torch.__version__}; recipe {sizes.recipe}; work dir {work}")
    try:
        paths = make_inputs(sizes, work, log)
        all_sets = stage_sets(sizes)
        for kv in a.sets:
            if kv.split(".", 1)[0] in all_sets:
                all_sets[kv.split(".", 1)[0]].append(kv)
        rows = []
        deadline = t_start + a.budget_s
        for stage in stages:
            log_path = a.out.with_name(f"{a.out.stem}.{stage}.log")
            attempt = partial(run_stage, stage, sizes, paths, work, log_path=log_path, log=log)
            rows.append(with_retries(stage, all_sets[stage], getattr(sizes, stage)["micro"], attempt, deadline, log))
        device = next((r["device"] for r in rows if "device" in r), "cpu" if a.smoke else "unknown GPU")
        peak, peak_note = peak_flops(device)
        for row in rows:
            finish_row(row, sizes, peak, torch.cuda.is_available())
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)

    states = model_states_gib(sizes)
    print(
        f"\nRESULT device: {device}; MFU against {peak_note}; memory: {rows[0].get('memory_kind', '')}; "
        f"model states (qwenflow model info, 1 GPU, no ZeRO): {states:.2f} GiB"
    )
    print(table(rows))
    pre = next((r for r in rows if r["stage"] == "pretrain" and "error" not in r), None)
    goal = None
    if pre is not None and not a.smoke:
        goal = pre["mfu"] >= GOAL_MFU
        verdict = "met" if goal else "NOT met"
        print(f"GOAL pre-training MFU >= {GOAL_MFU:.0%} at seq {sizes.pretrain['seq']}: {pre['mfu']:.1%} ({verdict})")
    report = {
        "mode": "smoke" if a.smoke else "gpu",
        "recipe": sizes.recipe,
        "device": device,
        "peak_flops": peak,
        "peak_note": peak_note,
        "model_info_states_gib": states,
        "goal": {"pretrain_mfu_min": GOAL_MFU, "met": goal},
        "seconds": time.perf_counter() - t_start,
        "stages": rows,
    }
    a.out.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    print(f"wrote {a.out} ({report['seconds']:.0f} s)")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
