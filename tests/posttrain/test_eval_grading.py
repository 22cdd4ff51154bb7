"""Post-training's held-out exact match grades each split with its own task's verifier (the one GRPO rewards with):
code tasks by their hidden unit tests in the sandbox, not by comparing the code's text with the tests."""

from __future__ import annotations

import pandas as pd
import pytest

from qwenflow.data.code_tasks import CODE_TASK, fenced, split_code_problems
from qwenflow.posttrain.common import grade, new_tokens_for
from qwenflow.verifiers.tasks import CODE_MIN_NEW_TOKENS


def test_code_split_is_graded_by_its_unit_tests_and_math_by_value():
    held, _ = split_code_problems(3, seed=0)
    completions = [fenced(p["solution"]) for p in held] + [fenced(p["wrong"]) for p in held]
    completions += ["The answer is 85.", "84"]
    tasks = [CODE_TASK] * (2 * len(held)) + ["arithmetic"] * 2
    answers = [p["answer"] for p in held] * 2 + ["85", "85"]
    assert grade(completions, tasks, answers) == [True] * len(held) + [False] * len(held) + [True, False]


def test_unknown_task_is_an_error_not_a_silent_zero():
    with pytest.raises(ValueError, match="no verifier for task 'poetry'"):
        grade(["roses"], ["poetry"], ["red"])


def test_code_splits_get_room_for_a_function():
    code = pd.DataFrame({"task": [CODE_TASK], "answer": ["assert f() == 1"]})
    math = pd.DataFrame({"task": ["arithmetic"], "answer": ["5"]})
    assert new_tokens_for(code, 16) == CODE_MIN_NEW_TOKENS
    assert new_tokens_for(math, 16) == 16
