"""Preference pairs in the docs/stages.md layout (preferences/{train,test}.parquet) for reward and DPO tests."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
from arith_data import problems

from qwenflow.artifacts import write_manifest


def make_preferences(
    root: Path,
    n_train: int = 96,
    n_test: int = 32,
    seed: int = 0,
    rejected: str | None = None,
    identical: int = 0,
    lo: int = 10,
    hi: int = 99,
) -> Path:
    """Chosen = the right sum, rejected = a wrong one (or the fixed text `rejected`); `identical` extra broken
    pairs with chosen == rejected are appended to train."""
    rng = random.Random(seed)
    rows = problems(n_train + n_test, seed + 7, lo, hi)
    msg = lambda role, text: [{"role": role, "content": text}]  # noqa: E731

    def frame(part):
        return pd.DataFrame(
            {
                "prompt": [msg("user", q) for q, _ in part],
                "chosen": [msg("assistant", a) for _, a in part],
                "rejected": [msg("assistant", rejected or str(int(a) + rng.choice([-11, -3, 2, 9]))) for _, a in part],
            }
        )

    train, test = frame(rows[:n_train]), frame(rows[n_train:])
    if identical:
        same = [msg("assistant", "42")] * identical
        train = pd.concat(
            [
                train,
                pd.DataFrame(
                    {"prompt": [msg("user", "What is 40 + 2?")] * identical, "chosen": same, "rejected": same}
                ),
            ],
            ignore_index=True,
        )
    d = Path(root) / "preferences"
    d.mkdir(parents=True, exist_ok=True)
    train.to_parquet(d / "train.parquet")
    test.to_parquet(d / "test.parquet")
    write_manifest(d, rows=len(train) + len(test))
    return Path(root)


def make_criteria_preferences(root: Path, seed: int = 0) -> Path:
    """Reward-model pairs labelled by criterion (qwenflow.data.preference_pairs), as the data stage builds them:
    training pairs on root/sft's problems (criteria in turn), held-out pairs on root/eval's problems (every criterion
    for each), so no held-out prompt is trained on."""
    from qwenflow.data.chat import chatterbot_conversations
    from qwenflow.data.preference_pairs import CRITERIA, off_topic_replies, preference_pair
    from qwenflow.data.synthetic import distant_wrong_answer

    rng = random.Random(seed)
    replies_train, replies_test = off_topic_replies(chatterbot_conversations())
    sft = pd.read_parquet(Path(root) / "sft" / "train.parquet")
    ev = pd.read_parquet(Path(root) / "eval" / "arithmetic.parquet")
    train_ps = [(m[0]["content"], a) for m, a in zip(sft["messages"], sft["answer"])]
    test_ps = [(p[0]["content"], a) for p, a in zip(ev["prompt"], ev["answer"])]

    def pair(q: str, a: str, criterion: str, replies: list[str]) -> dict:
        wrong = distant_wrong_answer({"answer": a}, rng, [])
        return preference_pair([{"role": "user", "content": q}], a, wrong, criterion, rng, replies, "arithmetic")

    train = pd.DataFrame([pair(q, a, CRITERIA[i % len(CRITERIA)], replies_train) for i, (q, a) in enumerate(train_ps)])
    test = pd.DataFrame([pair(q, a, c, replies_test) for q, a in test_ps for c in CRITERIA])
    d = Path(root) / "preferences"
    d.mkdir(parents=True, exist_ok=True)
    train.to_parquet(d / "train.parquet")
    test.to_parquet(d / "test.parquet")
    write_manifest(d, rows=len(train) + len(test))
    return Path(root)
