"""Evaluation throughput: MMLU questions/s and generation tokens/s, batched + prefix-cached vs a naive
one-request-at-a-time loop, measured in the same run on the same model (target: >= 5x).

    python benchmarks/eval_throughput.py [--model DIR] [--questions 40] [--prompts 16] [--tokens 32]

Without --model it builds the tiny recipe's untrained model (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from qwenflow.data.benchmarks import load_mmlu
from qwenflow.eval.lm import HFModel
from qwenflow.eval.tasks import multiple_choice as mc


def tiny_model(out: str) -> str:
    import sys
    import sysconfig
    from pathlib import Path

    from qwenflow.artifacts import save_model_dir
    from qwenflow.models import build_model
    from qwenflow.recipe import load_recipe
    from qwenflow.tokenizer.bpe import train_bpe

    texts = [p.read_text(errors="ignore") for p in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:60]]
    tok = train_bpe(texts, vocab_size=1024)
    recipe = load_recipe("tiny", ["model.vocab_size=1024", "tokenizer.vocab_size=1024"])
    model = build_model(recipe.model, seed=0, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    print("built the tiny model", file=sys.stderr)
    return str(save_model_dir(model, tok, out, recipe=recipe))


def naive_mmlu(lm: HFModel, reqs) -> list[float]:
    """What a first implementation does: one forward pass over the full prompt per option."""
    out = []
    with torch.inference_mode():
        for r in reqs:
            ctx, cont = lm.encode(r.prefix + r.context), lm.encode(r.continuation)
            logp = torch.log_softmax(lm.model(torch.tensor([ctx + cont])).logits[0].float(), -1)
            out.append(sum(float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont)))
    return out


def naive_generate(lm: HFModel, prompts, n: int) -> int:
    """Greedy decoding without the KV cache, one prompt at a time: the whole sequence re-run per token."""
    made = 0
    with torch.inference_mode():
        for p in prompts:
            ids = torch.tensor([lm.encode(p)])
            for _ in range(n):
                nxt = lm.model(ids, use_cache=False).logits[0, -1].argmax()
                ids = torch.cat([ids, nxt.view(1, 1)], 1)
                made += 1
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model")
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=32)
    a = ap.parse_args()
    torch.set_num_threads(1)  # the harness does the same for tiny CPU models; same setting for both sides
    model_dir = a.model or tiny_model(tempfile.mkdtemp(prefix="qwenflow-bench-"))
    lm = HFModel(model_dir, batch_size=16)

    bench = load_mmlu()
    prefixes, used = mc.mmlu_prompts(bench.items, 5, 0)
    # a few subjects, several questions each: the shape of a real MMLU run (thousands of questions per prefix set)
    items = [it for it in bench.items if it.id not in used and it.subject in sorted(prefixes)[:4]][: a.questions]
    from qwenflow.eval.lm import Request

    reqs = [
        Request(prefixes[it.subject], mc.mmlu_block(it, False), f" {mc.LETTERS[j]}") for it in items for j in range(4)
    ]
    t = time.perf_counter()
    fast = lm.loglikelihood(reqs)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    slow = naive_mmlu(lm, reqs)
    t_slow = time.perf_counter() - t
    err = max(abs(x - y) for x, y in zip(fast, slow))
    print(
        f"MMLU 5-shot, {len(items)} questions: batched+cached {len(items) / t_fast:.2f} q/s, "
        f"naive {len(items) / t_slow:.2f} q/s, speed-up {t_slow / t_fast:.1f}x (max |diff| {err:.1e})"
    )

    prompts = [it.question[:200] for it in bench.items[: a.prompts]]
    t = time.perf_counter()
    outs = lm.generate(prompts, a.tokens)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    made = naive_generate(lm, prompts, a.tokens)
    t_slow = time.perf_counter() - t
    fast_tokens = len(prompts) * a.tokens  # upper bound counted the same way as the naive loop
    print(
        f"generation, {len(prompts)} prompts x {a.tokens} tokens: batched+KV cache {fast_tokens / t_fast:.0f} tok/s, "
        f"naive {made / t_slow:.0f} tok/s, speed-up {t_slow / t_fast:.1f}x ({sum(len(o[0]) for o in outs)} chars)"
    )


if __name__ == "__main__":
    main()
