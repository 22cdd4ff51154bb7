"""One-off GPU check: Qwen2.5-0.5B (random weights, bf16 autocast) trained a few steps at seq 4096 with the
platform's training step; prints tokens/s and MFU against the card's dense bf16 peak.

Self-contained: needs only the torch and transformers already on the machine (accelerate for the platform's
step; without it the plain loop alone is measured and the output says so). No network. About 1-3 minutes.

    python benchmarks/gpu_check.py                 # from the repo root
    python benchmarks/gpu_check.py --micro-batch 2 --steps 6 --compile
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))  # import qwenflow from the checkout, installed or not

# Qwen2.5-0.5B (recipes/qwen2.5-0.5b.yaml), used when the recipe loader's dependencies are not installed here.
QWEN25_05B = dict(
    vocab_size=151936,
    hidden_size=896,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    intermediate_size=4864,
    tie_word_embeddings=True,
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
)
PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}  # dense bf16, no sparsity


def build(seq_len: int):
    """(model, training FLOPs per token, where the numbers came from)."""
    import torch

    try:
        from qwenflow.models import build_model, model_size
        from qwenflow.recipe import load_recipe

        spec = load_recipe("qwen2.5-0.5b").model
        torch.manual_seed(0)
        return build_model(spec), model_size(spec, seq_len).flops_per_token, "qwenflow recipe qwen2.5-0.5b"
    except ImportError as e:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        torch.manual_seed(0)
        cfg = Qwen2Config(**QWEN25_05B, rope_parameters={"rope_type": "default", "rope_theta": 1e6})
        model = Qwen2ForCausalLM(cfg)
        c = QWEN25_05B
        params = sum(p.numel() for p in model.parameters())
        # tied embeddings: the table is counted once and used once as a matmul (the LM head), as qwenflow.models does
        flops = 6 * params + 12 * c["num_hidden_layers"] * seq_len * c["hidden_size"]
        return model, float(flops), f"built-in Qwen2.5-0.5B numbers (recipe loader unavailable: {e})"


def timed(step, n_warmup: int, n_steps: int) -> float:
    import torch

    for _ in range(n_warmup):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n_steps):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n_steps


def time_plain_loop(model, batch, n_warmup: int, n_steps: int) -> float:
    """(a) plain PyTorch loop: bf16 autocast, fused AdamW, fp32 master weights. Its optimizer lives in this frame
    only, so its states are freed before the platform's step is measured."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)

    def plain():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return timed(plain, n_warmup, n_steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (adds compile time)")
    args = ap.parse_args()

    import torch

    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    if not torch.cuda.is_available():
        print("RESULT: no CUDA device visible to this torch build; nothing measured.")
        sys.exit(1)
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAKS.items() if k in name.upper()), None)
    print(f"device: {name}; bf16 peak used for MFU: {peak / 1e12 if peak else 'unknown'} TFLOP/s")
    torch.backends.cuda.matmul.allow_tf32 = True

    model, flops_per_token, source = build(args.seq_len)
    model = model.cuda()
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model: {n_params / 1e6:.1f}M parameters ({source}); {flops_per_token / 1e9:.3f} GFLOP/token at "
        f"seq {args.seq_len}"
    )
    if args.compile:
        model = torch.compile(model)
    tokens = args.micro_batch * args.seq_len
    batch = torch.randint(0, 151643, (args.micro_batch, args.seq_len), device="cuda")
    results = {}

    results["plain PyTorch loop"] = time_plain_loop(model, batch, args.warmup, args.steps)
    torch.cuda.empty_cache()  # the plain loop's optimizer states are gone with its frame

    # (b) the platform's step (qwenflow.train.engine.train_step through accelerate, as pre-training runs it)
    try:
        from accelerate import Accelerator

        from qwenflow.train.engine import adamw, train_step

        class Section:  # the optimizer fields of a recipe section
            learning_rate, weight_decay, beta1, beta2 = 1e-4, 0.1, 0.9, 0.95

        acc = Accelerator(mixed_precision="bf16", step_scheduler_with_optimizer=False)
        popt = adamw(model, Section, fused=True)
        sched = torch.optim.lr_scheduler.LambdaLR(popt, lambda s: 1.0)
        pmodel, popt = acc.prepare(model, popt)
        losses = []

        def platform():
            loss, _, _ = train_step(acc, pmodel, popt, sched, [batch], 1.0)
            losses.append(loss)

        results["platform step"] = timed(platform, args.warmup, args.steps)
        print(f"platform step losses: {[round(float(x), 3) for x in losses]}")
    except ImportError as e:
        print(f"platform step NOT measured (missing {e.name}); only the plain loop ran")

    print(
        f"\nRESULT  seq {args.seq_len} x micro-batch {args.micro_batch} = {tokens} tokens/step, bf16 autocast, "
        f"peak memory {torch.cuda.max_memory_allocated() / 1024**3:.1f} GiB"
    )
    for label, dt in results.items():
        tps = tokens / dt
        mfu = flops_per_token * tps / peak if peak else math.nan
        print(f"RESULT  {label:20s} {dt * 1e3:8.1f} ms/step  {tps:10,.0f} tokens/s  MFU {mfu:6.1%}  ({name})")
    if len(results) == 2:
        a, b = results["plain PyTorch loop"], results["platform step"]
        print(f"RESULT  platform / plain tokens/s ratio: {a / b:.3f}")


if __name__ == "__main__":
    main()
