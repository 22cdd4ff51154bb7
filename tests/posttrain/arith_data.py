"""Two-digit arithmetic datasets in the docs/stages.md layout (sft/, rl/, eval/), for post-training tests
until (and independent of) the data stage: user `What is 47 + 38?`, assistant `85`."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from qwenflow.artifacts import write_manifest


def problems(n: int, seed: int, lo: int = 10, hi: int = 99, exclude: set | None = None) -> list[tuple[str, str]]:
    rng, out, seen = random.Random(seed), [], set(exclude or ())
    if n + len(seen) > 2 * (hi - lo + 1) ** 2:
        raise ValueError(f"only {2 * (hi - lo + 1) ** 2} distinct problems with operands {lo}..{hi}")
    while len(out) < n:
        a, b, op = rng.randint(lo, hi), rng.randint(lo, hi), rng.choice("+-")
        q = f"What is {a} {op} {b}?"
        if q in seen:
            continue
        seen.add(q)
        out.append((q, str(a + b if op == "+" else a - b)))
    return out


def make_arith_data(
    root: Path,
    n_sft: int = 2000,
    n_rl: int = 256,
    n_eval: int = 100,
    seed: int = 0,
    lo: int = 10,
    hi: int = 99,
    rl_all: bool = False,
) -> Path:
    """Write root/{sft,rl,eval}; eval problems never appear in sft or rl. rl_all: the RL prompts are every
    problem that is not held out (SFT's included), as the data stage's are drawn from the same pool."""
    root = Path(root)
    held = problems(n_eval, seed + 1000, lo, hi)
    if rl_all:
        n_rl = 2 * (hi - lo + 1) ** 2 - n_eval - n_sft
    train = problems(n_sft + n_rl, seed, lo, hi, exclude={q for q, _ in held})
    if rl_all:
        train = train + train[:n_sft]
    user = lambda q: [{"role": "user", "content": q}]  # noqa: E731
    parts = {
        "sft/train.parquet": pd.DataFrame(
            {
                "messages": [user(q) + [{"role": "assistant", "content": a}] for q, a in train[:n_sft]],
                "task": "arithmetic",
                "answer": [a for _, a in train[:n_sft]],
            }
        ),
        "rl/prompts.parquet": pd.DataFrame(
            {
                "prompt": [user(q) for q, _ in train[n_sft:]],
                "task": "arithmetic",
                "answer": [a for _, a in train[n_sft:]],
            }
        ),
        "eval/arithmetic.parquet": pd.DataFrame(
            {"prompt": [user(q) for q, _ in held], "task": "arithmetic", "answer": [a for _, a in held]}
        ),
    }
    for rel, df in parts.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(root / rel)
        write_manifest((root / rel).parent, rows=len(df))
    return root
