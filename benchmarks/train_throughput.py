"""Training throughput on this machine, measured in one run on the same model and batch:

  (a) a plain PyTorch training loop on the HF model (autocast where bf16 is native, fused AdamW, clipping),
  (b) the platform's pre-training step (qwenflow.train.engine.train_step through accelerate),
  (c) the machine's GEMM peak in the same dtype.

Prints tokens/s of (a) and (b), the ratio b/a (target >= 0.95: the platform adds under 5%) and the MFU of (b)
against (c) (target >= 50% for hidden >= 384 on the 2-core CPU). (a) and (b) alternate in rounds so that load from
other processes hits both alike; the median round counts.

    python benchmarks/train_throughput.py [--hidden 384 --layers 4 --seq-len 256 --batch 8 --compile]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4, help="steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model for both loops")
    args = ap.parse_args()

    from accelerate import Accelerator

    from qwenflow.models import build_model, model_size
    from qwenflow.recipe import load_recipe
    from qwenflow.train.engine import adamw, train_step
    from qwenflow.train.hardware import cpu_has_bf16, matmul_flops

    heads = max(1, args.hidden // 64)
    recipe = load_recipe("tiny", [f"model.hidden_size={args.hidden}", f"model.num_layers={args.layers}",
                                  f"model.num_heads={heads}", f"model.num_kv_heads={max(1, heads // 3)}",
                                  f"model.intermediate_size={3 * args.hidden}", f"pretrain.seq_len={args.seq_len}",
                                  f"pretrain.micro_batch_size={args.batch}", f"pretrain.global_batch_size={args.batch}"])
    bf16 = torch.cuda.is_available() or cpu_has_bf16()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if bf16 else torch.float32
    flops_per_token = model_size(recipe.model, args.seq_len).flops_per_token
    tokens = args.batch * args.seq_len
    batch = torch.randint(0, recipe.model.vocab_size, (args.batch, args.seq_len), device=device)
    print(f"model hidden {args.hidden}, {args.layers} layers, {flops_per_token / 1e6:.1f} MFLOP/token; "
          f"batch {args.batch} x {args.seq_len}; {'bf16 autocast' if bf16 else 'fp32 (no native bf16 here)'}; "
          f"torch threads {torch.get_num_threads()}; compile {args.compile}")

    def fresh():
        m = build_model(recipe.model, seed=0).to(device)
        return torch.compile(m) if args.compile else m

    # (a) plain loop
    plain_model = fresh()
    opt = torch.optim.AdamW(plain_model.parameters(), lr=recipe.pretrain.learning_rate, betas=(0.9, 0.95), weight_decay=0.1, fused=True)

    def plain():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = plain_model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plain_model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    # (b) the platform's step
    acc = Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=device == "cpu", step_scheduler_with_optimizer=False)
    p_model = fresh()
    p_opt = adamw(p_model, recipe.pretrain, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(p_opt, lambda s: 1.0)
    p_model, p_opt = acc.prepare(p_model, p_opt)

    def platform():
        train_step(acc, p_model, p_opt, sched, [batch], 1.0)

    def timed(fn) -> float:
        start = time.perf_counter()
        for _ in range(args.steps):
            fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return tokens * args.steps / (time.perf_counter() - start)

    plain(), platform()  # warm up (and compile)
    a, b = [], []
    for _ in range(args.rounds):
        a.append(timed(plain))
        b.append(timed(platform))
    peak = matmul_flops(dtype, 2048, seconds=1.0, device=device)
    ta, tb = statistics.median(a), statistics.median(b)
    print(f"(a) plain PyTorch loop : {ta:10,.0f} tokens/s   MFU {flops_per_token * ta / peak:6.1%}")
    print(f"(b) platform step      : {tb:10,.0f} tokens/s   MFU {flops_per_token * tb / peak:6.1%}")
    print(f"(c) GEMM peak (2048^3, {str(dtype).removeprefix('torch.')}): {peak / 1e9:,.1f} GFLOP/s")
    print(f"ratio b/a: {tb / ta:.3f} (target >= 0.95)   MFU of b: {flops_per_token * tb / peak:.1%} (target >= 50%)")


if __name__ == "__main__":
    main()
