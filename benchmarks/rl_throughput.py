"""GRPO throughput: qwenflow's GRPO settings against TRL's stock GRPOConfig, same model, same prompts, one run.

Prints generated tokens/s, seconds per step, the generation vs. training split and the ratio (target >= 1.0x).
Stock = GRPOConfig defaults (bf16 autocast, gradient checkpointing, max_completion_length 256, temperature 1.0,
plain RepeatSampler) with only the batch shape (prompts x generations), step count and CPU/GPU choice set to
match, so the figures compare like with like.

    python benchmarks/rl_throughput.py --model DIR [--steps 4] [--recipe tiny]

With no --model, a randomly initialised tiny model (tokenizer trained on stdlib source) is built first; a model
that has been through SFT is the realistic case (it stops at `<|im_end|>`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def arithmetic_prompts(n: int, seed: int = 0):
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b, op = rng.randint(10, 99), rng.randint(10, 99), rng.choice("+-")
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"What is {a} {op} {b}?"}],
                "task": "arithmetic",
                "answer": str(a + b if op == "+" else a - b),
                "prompt_idx": len(rows),
            }
        )
    return rows


def build_random_model(recipe, out: Path) -> Path:
    import sysconfig

    from qwenflow.artifacts import save_model_dir
    from qwenflow.models import build_model
    from qwenflow.tokenizer import load_tokenizer
    from qwenflow.tokenizer.bpe import train_bpe

    texts = [p.read_text(errors="ignore") for p in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:60]]
    train_bpe(texts, vocab_size=recipe.model.vocab_size).save_pretrained(out / "tok")
    tok = load_tokenizer(out / "tok")
    model = build_model(recipe.model, seed=0, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return save_model_dir(model, tok, out / "model")


def run_one(name: str, trainer_cls, cfg, model_dir: Path, tok, dataset, funcs, tracker=None) -> dict:
    from accelerate.state import AcceleratorState

    from qwenflow.posttrain import common

    AcceleratorState._reset_state(reset_partial_state=True)  # stock uses bf16, ours may not: one state per run
    model, _, _ = common.starting_model(model_dir)
    trainer = trainer_cls(model=model, reward_funcs=funcs, args=cfg, train_dataset=dataset, processing_class=tok)
    trainer.tracker = tracker
    t = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t
    steps = trainer.state.global_step
    return {
        "name": name,
        "steps": steps,
        "s_per_step": total / steps,
        "gen_s": trainer.gen_seconds,
        "train_s": total - trainer.gen_seconds,
        "tokens": trainer.gen_tokens,
        "tok_per_s": trainer.gen_tokens / max(trainer.gen_seconds, 1e-9),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="HF model dir (default: build a random tiny one)")
    ap.add_argument("--recipe", default="tiny")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--set", action="append", default=[], help="recipe override, e.g. grpo.global_batch_size=32")
    args = ap.parse_args(argv)

    from datasets import Dataset
    from trl import GRPOConfig

    from qwenflow.posttrain import common
    from qwenflow.posttrain.grpo import Recorded, VarianceTracker, _trainer_class, grpo_config
    from qwenflow.recipe import load_recipe
    from qwenflow.verifiers.math import math_reward

    recipe = load_recipe(args.recipe, [f"grpo.max_steps={args.steps}", *args.set])
    spec = recipe.grpo
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = args.model or build_random_model(recipe, tmp)
        tok = common.load_chat_tokenizer(model_dir)
        n_prompts = spec.global_batch_size // spec.num_generations * args.steps
        ds = Dataset.from_list(arithmetic_prompts(n_prompts))
        trainer_cls = _trainer_class()

        def verifier(completions, answer, **kw):
            return math_reward(completions, answer)

        verifier.__name__ = "verifier"
        stock = GRPOConfig(
            output_dir=str(tmp / "stock"),
            per_device_train_batch_size=spec.micro_batch_size,
            gradient_accumulation_steps=spec.global_batch_size // spec.micro_batch_size,
            num_generations=spec.num_generations,
            max_steps=args.steps,
            report_to=[],
            use_cpu=not common.torch.cuda.is_available(),
            seed=spec.seed,
            save_strategy="no",
            disable_tqdm=True,
        )
        ours = grpo_config(spec, tmp / "ours", common.stop_token_ids(tok), [1.0])
        ours.disable_tqdm = True
        tracker = VarianceTracker({"verifier": 1.0})
        results = [
            run_one("TRL stock", trainer_cls, stock, model_dir, tok, ds, [verifier]),
            run_one("qwenflow", trainer_cls, ours, model_dir, tok, ds, [Recorded(verifier, tracker)], tracker),
        ]
    print(
        f"\nGRPO throughput, {args.steps} steps x {spec.global_batch_size} completions "
        f"({spec.global_batch_size // spec.num_generations} prompts x {spec.num_generations}), model {model_dir}"
    )
    print(f"{'':10} {'gen tok/s':>10} {'s/step':>8} {'gen s':>8} {'train s':>8} {'gen share':>9} {'tokens':>7}")
    for r in results:
        total = r["gen_s"] + r["train_s"]
        print(
            f"{r['name']:10} {r['tok_per_s']:10.1f} {r['s_per_step']:8.2f} {r['gen_s']:8.1f} {r['train_s']:8.1f} "
            f"{r['gen_s'] / total:9.0%} {r['tokens']:7d}"
        )
    stock_r, ours_r = results
    print(
        f"step time: qwenflow is {stock_r['s_per_step'] / ours_r['s_per_step']:.2f}x stock (target >= 1.0x); "
        f"generated tokens/s: {ours_r['tok_per_s'] / stock_r['tok_per_s']:.2f}x stock"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
