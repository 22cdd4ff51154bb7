"""Verifiers and the reward-function guard: exact answers, format, sandboxed unit tests, failures handled."""

from __future__ import annotations

import math
import time

import pytest

from qwenflow.verifiers.code import CodeReward, extract_code
from qwenflow.verifiers.format import format_reward, number_only_reward
from qwenflow.verifiers.guard import GuardedReward, RewardFunctionError
from qwenflow.verifiers.math import answers_match, math_reward, parse_number
from qwenflow.verifiers.sandbox import Limits
from qwenflow.verifiers.tasks import TaskVerifier


def test_math_answers_compare_by_value():
    assert parse_number("1,234") == 1234 and parse_number("3/4") == parse_number("0.75")
    assert answers_match("85", "85") and answers_match(" -7 ", "-7") and answers_match("0.50", "1/2")
    assert answers_match(r"so \boxed{12}", "12") and answers_match("The answer is 42.", "42")
    assert not answers_match("84", "85") and not answers_match("85 apples and 3", "85") and not answers_match("", "0")
    # TRL passes conversational completions as message lists
    assert math_reward([[{"role": "assistant", "content": "85"}], "86"], ["85", "85"]) == [1.0, 0.0]


def test_format_checks():
    assert format_reward(["85", "", "85<|im_end|>", "user\nhi"]) == [1.0, 0.0, 0.0, 0.0]
    assert number_only_reward(["85", "eighty", "-3/4"]) == [1.0, 0.0, 1.0]


def test_code_verifier_runs_tests_in_sandbox_and_survives_loops_and_huge_allocations():
    reward = CodeReward(Limits(timeout_s=3.0, cpu_s=2, memory_bytes=256 << 20))
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    assert extract_code(good).startswith("def add")
    completions = [
        good,
        "def add(a, b):\n    return a - b",
        "def add(a, b):\n    while True: pass",
        "def add(a, b):\n    x = bytearray(10 * 1024**3)\n    return a + b",
    ]
    t = time.time()
    scores = reward(completions, ["assert add(2, 3) == 5"] * 4)
    assert scores == [1.0, 0.0, 0.0, 0.0]
    assert time.time() - t < 20  # the infinite loop is killed, not waited for
    assert reward.counts["passed"] == 1 and reward.counts["failed"] == 1 and reward.counts["timeout"] == 1
    assert reward.counts["error"] == 1  # MemoryError under the address-space limit


def test_task_verifier_dispatches_and_rejects_unknown_tasks():
    v = TaskVerifier()
    assert v(["5", "def f():\n    return 1"], task=["arithmetic", "code"], answer=["5", "assert f() == 1"]) == [
        1.0,
        1.0,
    ]
    with pytest.raises(ValueError, match="no verifier for task 'poetry'"):
        v(["x"], task=["poetry"], answer=["y"])


def test_reasoning_gym_tasks_are_graded_by_exact_answer():
    from qwenflow.data.synthetic import gym_problems

    v = TaskVerifier()
    gcd = gym_problems("gcd", 2, seed=3)
    words = gym_problems("word_sorting", 1, seed=3)[0]
    rows = gcd + [words]
    got = v(
        [p["answer"] for p in rows] + ["The answer is " + gcd[0]["answer"], "0.5", words["answer"] + " extra"],
        task=[p["task"] for p in rows] * 2,
        answer=[p["answer"] for p in rows] * 2,
    )
    assert got == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def _raises(completions, **kw):
    raise KeyError("answer")


def _nan(completions, **kw):
    return [float("nan"), 1.0][: len(completions)]


def _hangs(completions, **kw):
    time.sleep(30)
    return [1.0] * len(completions)


def test_guard_counts_raising_nan_and_hanging_functions():
    zero = GuardedReward(_raises, "bad", on_error="zero")
    assert zero(["a", "b"]) == [0.0, 0.0] and zero.failures["raised"] == 1
    skip = GuardedReward(_nan, "nan", on_error="skip")
    assert skip(["a", "b"]) == [None, 1.0] and skip.failures["nan"] == 1
    zero_nan = GuardedReward(_nan, "nan", on_error="zero")
    assert zero_nan(["a", "b"]) == [0.0, 1.0]
    hung = GuardedReward(_hangs, "slow", on_error="zero", timeout_s=0.5)
    t = time.time()
    assert hung(["a"]) == [0.0] and hung.failures["timeout"] == 1
    assert time.time() - t < 5
    short = GuardedReward(lambda c, **k: [1.0], "short")
    assert short(["a", "b"]) == [0.0, 0.0] and short.failures["bad_length"] == 1
    assert all(math.isfinite(x) for x in GuardedReward(math_reward, "ok")(["1"], answer=["1"]))


def test_guard_stop_raises_a_clear_error():
    with pytest.raises(RewardFunctionError, match="'bad' raised KeyError.*reward_on_error=stop"):
        GuardedReward(_raises, "bad", on_error="stop")(["a"])
    with pytest.raises(RewardFunctionError, match="NaN"):
        GuardedReward(_nan, "nan", on_error="stop")(["a", "b"])
