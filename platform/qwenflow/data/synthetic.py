"""Verifiable problems with exact answers: our own two-digit arithmetic plus reasoning-gym's seeded generators.

A problem is `{"task", "question", "answer"}`; the answer is what a verifier compares against (exact match after
stripping). `arithmetic` is written here because the tiny recipe needs one exact format ("What is 47 + 38?" -> "85",
operands 10..99; the universe can keep only answers up to `max_answer`, and sums below 100 (two-digit answers)
a 1.3M-parameter model learns from SFT in a few hundred steps; three-digit operands stayed below 1% in the same
budget); `python_functions` (code with hidden unit tests) lives in code_tasks.py; every
other task name is a reasoning-gym dataset (gsm_symbolic, chain_sum, gcd, ...).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

ARITHMETIC = "arithmetic"
CHAT = "chat"
# Generators whose worked problems make the `math_synthetic` pre-training source. gsm_symbolic is left out on
# purpose: it is built from GSM8K templates, which is an evaluation set.
MATH_TEXT_TASKS = ("chain_sum", "gcd", "lcm", "prime_factorization", "fraction_simplification")


def _arithmetic(a: int, op: str, b: int) -> dict:
    return {"task": ARITHMETIC, "question": f"What is {a} {op} {b}?", "answer": str(a + b if op == "+" else a - b)}


def arithmetic_problem(rng: random.Random, ops: str = "+-") -> dict:
    return _arithmetic(rng.randint(10, 99), rng.choice(ops), rng.randint(10, 99))


def arithmetic_universe(ops: str = "+-", max_answer: int | None = None) -> list[dict]:
    """Every distinct problem (two-digit operands, answers up to max_answer), so splits can be drawn without
    replacement and never overlap: len(ops) * 90 * 90 of them, 3,240 sums up to 99."""
    every = (_arithmetic(a, op, b) for a in range(10, 100) for b in range(10, 100) for op in ops)
    return [p for p in every if max_answer is None or int(p["answer"]) <= max_answer]


def gym_problems(task: str, n: int, seed: int) -> list[dict]:
    # lazy: imports matplotlib, numpy (seconds to import)
    import reasoning_gym

    try:
        ds = reasoning_gym.create_dataset(task, size=n, seed=seed)
    except Exception as e:  # reasoning-gym raises a bare KeyError/ValueError for unknown names
        raise ValueError(
            f"unknown post-training task {task!r}: use 'arithmetic', 'python_functions', 'chat' or a "
            f"reasoning-gym dataset name (e.g. gsm_symbolic, chain_sum, gcd) ({e})"
        ) from None
    return [{"task": task, "question": x["question"], "answer": str(x["answer"])} for x in ds]


def problems(task: str, n: int, seed: int, arithmetic_ops: str = "+-") -> list[dict]:
    if task == ARITHMETIC:
        rng = random.Random(seed)
        return [arithmetic_problem(rng, arithmetic_ops) for _ in range(n)]
    return gym_problems(task, n, seed)


def wrong_answer(problem: dict, rng: random.Random, others: list[dict]) -> str:
    """A plausible wrong answer: a near miss for numbers (off by one, a carry slip, sign), else another problem's
    answer."""
    ans = problem["answer"].strip()
    if re.fullmatch(r"-?\d+", ans):
        v = int(ans)
        for _ in range(10):
            cand = str(v + rng.choice([-10, -2, -1, 1, 2, 10, -v - v if v else 3]))
            if cand != ans:
                return cand
    pool = [o["answer"] for o in others if o["answer"].strip() != ans]
    if pool:
        return rng.choice(pool)
    return ans + " (approximately)"


def distant_wrong_answer(problem: dict, rng: random.Random, others: list[dict]) -> str:
    """A wrong answer a small reward model can tell from the right one: for numbers, off by more than 10 (so not a
    carry or sign slip: those need the arithmetic done exactly), else another problem's answer (wrong_answer)."""
    ans = problem["answer"].strip()
    if re.fullmatch(r"-?\d+", ans):
        v = int(ans)
        return str(v + rng.choice((-1, 1)) * rng.randint(11, max(20, abs(v))))
    return wrong_answer(problem, rng, others)


def math_documents(seed: int = 0, per_doc: int = 12) -> Iterator[str]:
    """Endless pre-training documents of worked problems, cycling through MATH_TEXT_TASKS."""
    # lazy: imports matplotlib, numpy (seconds to import)
    import reasoning_gym

    batch = 600
    round_ = 0
    while True:
        for task in MATH_TEXT_TASKS:
            # reasoning-gym seeds item i with seed + i: rounds must start far apart or they repeat each other.
            ds = reasoning_gym.create_dataset(task, size=batch, seed=seed * 1_000_003 + round_ * 100_003)
            items = [f"Problem: {x['question'].strip()}\nAnswer: {x['answer']}" for x in ds]
            for i in range(0, len(items), per_doc):
                yield "\n\n".join(items[i : i + per_doc])
        round_ += 1
