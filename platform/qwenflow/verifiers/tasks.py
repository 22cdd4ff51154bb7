"""Which verifier checks which task: rows carry `task` and `answer` (docs/stages.md), so one reward function
dispatches per row."""

from __future__ import annotations

from functools import cache

from .code import CodeReward
from .math import math_reward

MATH_TASKS = {"arithmetic", "math", "gsm8k", "gsm_symbolic", "basic_arithmetic"}
CODE_TASKS = {"code", "humaneval", "mbpp", "python", "python_functions"}  # python_functions: qwenflow.data.code_tasks
CODE_MIN_NEW_TOKENS = 256  # a function in a ```python block needs far more room than a numeric answer


def new_tokens_for(tasks, max_new_tokens: int) -> int:
    """Generation budget for rows of these tasks: at least CODE_MIN_NEW_TOKENS when any is a code task."""
    return max(max_new_tokens, CODE_MIN_NEW_TOKENS) if set(tasks) & CODE_TASKS else max_new_tokens


@cache
def is_gym_task(name: str) -> bool:
    """A reasoning-gym dataset name (qwenflow.data.synthetic generates those): its rows carry the exact answer."""
    # lazy: imports matplotlib, numpy (869 ms)
    from reasoning_gym.factory import DATASETS

    return name in DATASETS


def verifier_kind(task: str) -> str | None:
    """'code' for unit-test-graded tasks; 'math' (exact answer: numbers by value, else whitespace-normalised text)
    for our math tasks and reasoning-gym's (its own score_answer needs per-item metadata our rows do not keep)."""
    if task in CODE_TASKS:
        return "code"
    if task in MATH_TASKS or is_gym_task(task):
        return "math"
    return None


class TaskVerifier:
    """Reward per row by its task: math and reasoning-gym tasks by exact answer, code tasks by sandboxed unit tests.

    Unknown tasks raise (a silent 0 would hide a data bug); the guard counts that as a failure.
    """

    __name__ = "verifier"

    def __init__(self):
        self.code = CodeReward()

    def __call__(self, completions, task, answer, **kwargs) -> list[float]:
        out: list[float] = [0.0] * len(completions)
        groups: dict[str, list[int]] = {}
        for i, t in enumerate(task):
            kind = verifier_kind(t)
            if kind is None:
                raise ValueError(
                    f"no verifier for task {t!r}; known: {sorted(MATH_TASKS | CODE_TASKS)} and "
                    "reasoning-gym dataset names"
                )
            groups.setdefault(kind, []).append(i)
        for kind, idx in groups.items():
            fn = math_reward if kind == "math" else self.code
            scores = fn([completions[i] for i in idx], [answer[i] for i in idx])
            for i, s in zip(idx, scores):
                out[i] = s
        return out
