"""Code verifier: run the completion's code with the task's unit tests in the sandbox (time and memory limits)."""

from __future__ import annotations

import ast
import re
from collections import Counter

from .math import _text
from .sandbox import Limits, run_many

_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def extract_code(completion) -> str:
    """The last fenced code block, or the whole completion when there is none."""
    text = _text(completion)
    blocks = _FENCE.findall(text)
    return blocks[-1] if blocks else text


def split_tests(tests: str) -> list[str]:
    """One test per top-level statement (each assert reports its own outcome); unparsable text stays one test,
    so its SyntaxError is reported as that test's error."""
    try:
        body = ast.parse(tests).body
    except SyntaxError:
        return [tests]
    return [ast.get_source_segment(tests, node) or "" for node in body] or [tests]


def run_tests(
    completions,
    tests,
    limits: Limits = Limits(timeout_s=5.0, cpu_s=5, memory_bytes=512 << 20),
    prompts_code: list[str] | None = None,
) -> list:
    """Sandbox results, one per completion: (prompt's code prefix) + completion code runs first, then each test
    statement in its globals; passed only when every test reports passed (exiting early scores 0)."""
    prefix = prompts_code or [""] * len(completions)
    programs = [f"{p}{extract_code(c)}\n" for p, c in zip(prefix, completions)]
    return run_many(programs, limits, tests=[split_tests(t) for t in tests])


class CodeReward:
    """Reward 1.0 when the tests pass, else 0.0; counts outcomes (passed/failed/timeout/error) in `.counts`.

    The key column is `answer` (the unit tests as Python code, docs/stages.md), so it plugs into GRPO directly.
    """

    __name__ = "code"

    def __init__(self, limits: Limits = Limits(timeout_s=5.0, cpu_s=5, memory_bytes=512 << 20)):
        self.limits = limits
        self.counts: Counter = Counter()

    def __call__(self, completions, answer, **kwargs) -> list[float]:
        results = run_tests(completions, answer, self.limits)
        self.counts.update(r.status for r in results)
        return [1.0 if r.passed else 0.0 for r in results]
