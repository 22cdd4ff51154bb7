"""TRL's fused LM head on CPU: scoring every position (TRL's default off Triton) vs only the labelled ones
(qwenflow.posttrain.fused_head), on the tiny recipe's model and SFT batch shape, measured in the same run.

Each round times one forward+backward+AdamW step with each head, alternating which goes first, so load from other
processes hits both alike; the median round is printed. The tiny SFT rows are ~25 tokens with 3-4 labelled.

    python benchmarks/fused_head.py                  # batch 128 x 25 tokens, 4 labelled per row
    python benchmarks/fused_head.py --labelled 25    # every position labelled (pre-training-like): no gain expected
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seq-len", type=int, default=25)
    ap.add_argument("--labelled", type=int, default=4, help="labelled tokens at the end of each row")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5, help="steps per timing")
    args = ap.parse_args()

    import trl.trainer.utils as trl_utils
    from trl.trainer.utils import add_fused_lm_head

    from qwenflow.models import build_model
    from qwenflow.posttrain.fused_head import compact_fused_lm_head
    from qwenflow.recipe import load_recipe

    recipe = load_recipe("tiny")
    model = build_model(recipe.model, seed=0)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # what SFTTrainer installs
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, recipe.model.vocab_size, (args.batch, args.seq_len))
    labels = ids.clone()
    labels[:, : args.seq_len - args.labelled] = -100
    full_switch = trl_utils._use_triton  # TRL's own: compact only on Triton devices
    compact_fused_lm_head()
    compact_switch = trl_utils._use_triton

    def timed(switch) -> float:
        trl_utils._use_triton = switch
        t = time.perf_counter()
        for _ in range(args.steps):
            out = model(input_ids=ids, labels=labels, fused_lm_head=True)
            out.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return (time.perf_counter() - t) / args.steps

    timed(full_switch), timed(compact_switch)  # warm-up
    full, compact = [], []
    for r in range(args.rounds):
        order = [(full, full_switch), (compact, compact_switch)]
        for acc, switch in order if r % 2 == 0 else order[::-1]:
            acc.append(timed(switch))
    f, c = statistics.median(full), statistics.median(compact)
    print(
        f"tiny model, batch {args.batch} x {args.seq_len} tokens, {args.labelled} labelled per row, "
        f"torch threads {torch.get_num_threads()}, median of {args.rounds} rounds x {args.steps} steps"
    )
    print(f"TRL default on CPU (every position): {f * 1e3:8.1f} ms/step")
    print(f"compact (labelled positions only)  : {c * 1e3:8.1f} ms/step")
    print(f"speed-up: {f / c:.2f}x   load average: {open('/proc/loadavg').read().split()[0]}")


if __name__ == "__main__":
    main()
