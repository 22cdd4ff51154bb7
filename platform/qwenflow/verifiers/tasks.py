"""Which verifier checks which task: rows carry `task` and `answer` (docs/stages.md), so one reward function
dispatches per row."""
from __future__ import annotations

from .code import CodeReward
from .math import math_reward

MATH_TASKS = {"arithmetic", "math", "gsm8k", "gsm_symbolic", "basic_arithmetic"}
CODE_TASKS = {"code", "humaneval", "mbpp", "python", "python_functions"}  # python_functions: qwenflow.data.code_tasks


class TaskVerifier:
    """Reward per row by its task: math tasks by exact answer, code tasks by sandboxed unit tests.

    Unknown tasks raise (a silent 0 would hide a data bug); the guard counts that as a failure.
    """

    __name__ = "verifier"

    def __init__(self):
        self.code = CodeReward()

    def __call__(self, completions, task, answer, **kwargs) -> list[float]:
        out: list[float] = [0.0] * len(completions)
        groups: dict[str, list[int]] = {}
        for i, t in enumerate(task):
            kind = "math" if t in MATH_TASKS else "code" if t in CODE_TASKS else None
            if kind is None:
                raise ValueError(f"no verifier for task {t!r}; known: {sorted(MATH_TASKS | CODE_TASKS)}")
            groups.setdefault(kind, []).append(i)
        for kind, idx in groups.items():
            fn = math_reward if kind == "math" else self.code
            scores = fn([completions[i] for i in idx], [answer[i] for i in idx])
            for i, s in zip(idx, scores):
                out[i] = s
        return out
