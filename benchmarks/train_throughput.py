"""Training throughput on this machine, measured in one run on the same model and batch:

  (a) a plain PyTorch training loop on the HF model (autocast where bf16 is native, fused AdamW, clipping),
  (b) the platform's pre-training step: the engine's own setup (qwenflow.train.engine.prepare: accelerate, optional
      torch.compile, AdamW groups) and its train_step,
  (c) the machine's GEMM peak in the same dtype: the best of several bursts over the model's GEMM shapes and large
      square ones (the highest rate found, so MFU is not flattered by a slow probe).

Each round runs (c), (a) and (b) back to back in a rotating order, so load from other processes hits all alike;
the ratio b/a and the MFU of b are computed per round and the median round is printed. Targets on the 2-core CPU:
ratio >= 0.95 (the platform adds under 5%) and MFU >= 50% for hidden >= 384.

    python benchmarks/train_throughput.py                  # hidden 384, 4 layers, batch 8 x 256
    python benchmarks/train_throughput.py --tiny           # the tiny recipe's pretrain model and batch, unchanged
    python benchmarks/train_throughput.py --compile off    # force eager (or `on`) instead of the engine's choice

--compile auto (the default) takes the engine's own choice (pretrain.compile: auto) for a run of the recipe's
max_steps at this size. When compiling, both loops are compiled, a plain eager loop runs too, and the compile time
(first step minus a steady one) and the steps it takes to pay back are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def recipe_for(args):
    from qwenflow.recipe import load_recipe

    if args.tiny:
        return load_recipe("tiny")
    heads = max(1, args.hidden // 64)
    return load_recipe(
        "tiny",
        [
            f"model.hidden_size={args.hidden}",
            f"model.num_layers={args.layers}",
            f"model.num_heads={heads}",
            f"model.num_kv_heads={max(1, heads // 3)}",
            f"model.intermediate_size={3 * args.hidden}",
            f"pretrain.seq_len={args.seq_len}",
            f"pretrain.micro_batch_size={args.batch}",
            f"pretrain.global_batch_size={args.batch}",
        ],
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument(
        "--tiny", action="store_true", help="the tiny recipe's pretrain model and batch (ignores the sizes)"
    )
    ap.add_argument(
        "--compile",
        choices=["auto", "off", "on"],
        default="auto",
        help="torch.compile both loops; auto = what the engine chooses for a max_steps run of this size",
    )
    ap.add_argument("--steps", type=int, default=3, help="steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from qwenflow.models import build_model, model_size
    from qwenflow.train.engine import compile_decision, prepare, train_step
    from qwenflow.train.hardware import gemm_peak, model_gemm_shapes, probe

    recipe = recipe_for(args)
    spec, section = recipe.model, recipe.pretrain
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    hw = probe(section.bf16, device)
    run_flops = (
        section.max_steps
        * section.global_batch_size
        * section.seq_len
        * model_size(spec, section.seq_len).flops_per_token
    )
    compiled, why = compile_decision(section.model_copy(update={"compile": "auto"}), spec.arch, run_flops, hw)
    if args.compile != "auto":
        compiled, why = args.compile == "on", "--compile"
    section = section.model_copy(update={"compile": compiled})
    bf16, dtype = hw["bf16"], torch.bfloat16 if hw["bf16"] else torch.float32
    seq, micro, accum = section.seq_len, section.micro_batch_size, section.global_batch_size // section.micro_batch_size
    flops_per_token = model_size(spec, seq).flops_per_token
    tokens = section.global_batch_size * seq
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, spec.vocab_size, (micro, seq), generator=gen).to(device) for _ in range(accum)]
    shapes = model_gemm_shapes(micro * seq, spec.hidden_size, spec.intermediate_size, spec.vocab_size)
    print(
        f"model hidden {spec.hidden_size}, {spec.num_layers} layers, vocab {spec.vocab_size}, "
        f"{flops_per_token / 1e6:.1f} MFLOP/token; step {accum} x {micro} x {seq} tokens; "
        f"{'bf16 autocast' if bf16 else 'fp32 (no native bf16 here)'}; torch threads {torch.get_num_threads()}; "
        f"compile {'on' if compiled else 'off'} ({why})"
    )

    def plain_loop(compiled: bool):
        model = build_model(spec, seed=0).to(device)
        if compiled:
            model.compile()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, fused=True)

        def step():
            for b in batches:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = model(input_ids=b, labels=b).loss
                (loss / accum).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), section.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    def platform_loop():
        p = prepare(build_model(spec, seed=0), section, lambda s: 1.0, device_probe=hw)

        def step():
            train_step(p.accelerator, p.model, p.optimizer, p.scheduler, batches, section.grad_clip)

        return step

    loops = {"plain": plain_loop(compiled), "platform": platform_loop()}
    if compiled:
        loops["plain eager"] = plain_loop(False)

    def timed(fn, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    first = {name: timed(fn, 1) for name, fn in loops.items()}  # warm-up; compiles when compiling
    tps = {name: [] for name in loops}
    peaks, ratios, mfus = [], [], []
    names = list(loops)
    for r in range(args.rounds):
        peaks.append(gemm_peak(dtype, shapes, seconds=0.2, device=device.type))
        for name in names[r % len(names) :] + names[: r % len(names)]:
            tps[name].append(tokens * args.steps / timed(loops[name], args.steps))
        ratios.append(tps["platform"][-1] / tps["plain"][-1])
        mfus.append(flops_per_token * tps["platform"][-1] / peaks[-1])

    med = {name: statistics.median(v) for name, v in tps.items()}
    peak = statistics.median(peaks)
    label = " (compiled)" if compiled else ""
    mfu = {k: flops_per_token * v / peak for k, v in med.items()}
    print(f"(a) plain PyTorch loop{label:11}: {med['plain']:10,.0f} tokens/s   MFU {mfu['plain']:6.1%}")
    print(f"(b) platform step{label:16}: {med['platform']:10,.0f} tokens/s   MFU {mfu['platform']:6.1%}")
    if "plain eager" in med:
        print(
            f"    plain loop, eager           : {med['plain eager']:10,.0f} tokens/s   "
            f"compile gain {med['plain'] / med['plain eager'] - 1:+.1%}"
        )
        for name in ("plain", "platform"):
            steady = tokens / med[name]
            gain = tokens / med["plain eager"] - steady
            pay = f"pays back after {(first[name] - steady) / gain:,.0f} steps" if gain > 0 else "never pays back"
            print(f"    compile time ({name:8}): {first[name] - steady:6.1f} s   {pay}")
    print(
        f"(c) GEMM peak ({str(dtype).removeprefix('torch.')}, best of {len(shapes)} shapes incl. the model's): "
        f"median {peak / 1e9:,.1f} GFLOP/s, best {max(peaks) / 1e9:,.1f} over {args.rounds} rounds"
    )
    print(
        f"ratio b/a: {statistics.median(ratios):.3f} (target >= 0.95)   MFU of b: {statistics.median(mfus):.1%} "
        f"(target >= 50%; {flops_per_token * med['platform'] / max(peaks):.1%} against the best peak)"
    )


if __name__ == "__main__":
    main()
