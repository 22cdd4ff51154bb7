"""Long-context prefill: time and peak memory at 4x and 8x the trained length for standard attention (YaRN,
sdpa), Dual Chunk Attention (YaRN+DCA) and block-sparse prefill (YaRN+DCA+sparse), in one run; and what sparsity
costs in accuracy (next-token agreement with dense DCA, and passkey accuracy from the long-context check).

    python benchmarks/long_context.py                      # tiny-recipe shape, trained length 2048, CPU
    python benchmarks/long_context.py --shape 0.5b --trained 4096 --dtype bfloat16   # on a GPU
    python benchmarks/long_context.py --model runs/longctx/model --passkey-report runs/longctx/passkey_report.json

Each measurement runs in a fresh process so peak memory is its own (CPU: max RSS; GPU: max allocated).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import tempfile
import time
from pathlib import Path

SETTINGS = {"standard": "yarn", "dca": "yarn+dca", "sparse": "yarn+dca+sparse"}
SHAPES = {  # (hidden, layers, heads, kv heads, intermediate); vocab kept small: prefill keeps only the last logit
    "tiny": (128, 4, 4, 2, 384),
    "0.5b": (896, 24, 14, 2, 4864),
}


def make_model_dir(shape: str, trained: int, out: Path) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    hidden, layers, heads, kv, inter = SHAPES[shape]
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=4096,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        intermediate_size=inter,
        max_position_embeddings=trained,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        tie_word_embeddings=True,
    )
    Qwen2ForCausalLM(config).save_pretrained(out)
    return out


def measure(model_dir: str, setting: str, length: int, dtype: str, repeats: int, queue) -> None:
    import torch

    from qwenflow.longctx import load_model

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    model = load_model(model_dir, setting, dtype=getattr(torch, dtype), device=device)
    ids = torch.randint(0, model.config.vocab_size, (1, length), generator=torch.Generator().manual_seed(0))
    ids = ids.to(device)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):  # first run warms up
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            logits = model(ids, logits_to_keep=length // 4).logits.float()
            if cuda:
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put(
        {"seconds": statistics.median(times), "peak_gib": peak / 2**30, "top1": logits[0].argmax(-1).cpu().tolist()}
    )


def run_one(*args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=measure, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main():
    ap = argparse.ArgumentParser(description="long-context prefill benchmark")
    ap.add_argument("--model", type=Path, help="a model directory (default: a random model of --shape)")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--trained", type=int, default=2048, help="trained length of the random model")
    ap.add_argument("--multiples", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--passkey-report", type=Path, help="passkey_report.json of qwenflow.longctx.check")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()

    import torch
    from transformers import AutoConfig

    from qwenflow.longctx import trained_length

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or make_model_dir(args.shape, args.trained, Path(tmp) / "model")
        trained = trained_length(AutoConfig.from_pretrained(model_dir, local_files_only=True))
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        print(f"model {model_dir if args.model else args.shape}, trained length {trained}, {args.dtype}, {device}")
        rows = []
        for m in args.multiples:
            length = m * trained
            res = {name: run_one(str(model_dir), s, length, args.dtype, args.repeats) for name, s in SETTINGS.items()}
            dense, sparse = res["dca"]["top1"], res["sparse"]["top1"]
            agree = sum(a == b for a, b in zip(dense, sparse)) / len(dense)
            for name, r in res.items():
                rows.append(
                    {
                        "length": length,
                        "multiple": m,
                        "attention": name,
                        "seconds": r["seconds"],
                        "peak_gib": r["peak_gib"],
                    }
                )
            base = res["standard"]["seconds"]
            print(f"\n{m}x = {length} tokens")
            print(f"{'attention':10s} {'prefill s':>10s} {'vs standard':>12s} {'peak GiB':>9s}")
            for name, r in res.items():
                print(f"{name:10s} {r['seconds']:10.3f} {base / r['seconds']:11.2f}x {r['peak_gib']:9.2f}")
            print(
                f"sparse vs dca: {res['dca']['seconds'] / res['sparse']['seconds']:.2f}x faster; next-token "
                f"top-1 agreement with dense DCA over the last quarter: {agree:.1%}"
            )
            rows.append(
                {
                    "length": length,
                    "sparse_speedup_vs_dca": res["dca"]["seconds"] / res["sparse"]["seconds"],
                    "sparse_speedup_vs_standard": base / res["sparse"]["seconds"],
                    "top1_agreement": agree,
                }
            )
    if args.passkey_report:
        rep = json.loads(args.passkey_report.read_text())
        print("\npasskey accuracy (mean over depths), from", args.passkey_report)
        for s in ("yarn+dca", "yarn+dca+sparse"):
            grid = rep["accuracy"][s]
            means = [sum(r[j] for r in grid) / len(grid) for j in range(len(rep["lengths"]))]
            print(f"{s:16s} " + "  ".join(f"{L}: {a:.0%}" for L, a in zip(rep["lengths"], means)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
