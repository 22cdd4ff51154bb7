"""Preference pairs in the docs/stages.md layout (preferences/{train,test}.parquet) for reward and DPO tests."""
from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from qwenflow.artifacts import write_manifest

from arith_data import problems


def make_preferences(root: Path, n_train: int = 96, n_test: int = 32, seed: int = 0, rejected: str | None = None,
                     identical: int = 0, lo: int = 10, hi: int = 99) -> Path:
    """Chosen = the right sum, rejected = a wrong one (or the fixed text `rejected`); `identical` extra broken
    pairs with chosen == rejected are appended to train."""
    rng = random.Random(seed)
    rows = problems(n_train + n_test, seed + 7, lo, hi)
    msg = lambda role, text: [{"role": role, "content": text}]  # noqa: E731

    def frame(part):
        return pd.DataFrame({
            "prompt": [msg("user", q) for q, _ in part],
            "chosen": [msg("assistant", a) for _, a in part],
            "rejected": [msg("assistant", rejected or str(int(a) + rng.choice([-11, -3, 2, 9]))) for _, a in part],
        })

    train, test = frame(rows[:n_train]), frame(rows[n_train:])
    if identical:
        same = [msg("assistant", "42")] * identical
        train = pd.concat([train, pd.DataFrame({"prompt": [msg("user", "What is 40 + 2?")] * identical,
                                                "chosen": same, "rejected": same})], ignore_index=True)
    d = Path(root) / "preferences"
    d.mkdir(parents=True, exist_ok=True)
    train.to_parquet(d / "train.parquet")
    test.to_parquet(d / "test.parquet")
    write_manifest(d, rows=len(train) + len(test))
    return Path(root)
