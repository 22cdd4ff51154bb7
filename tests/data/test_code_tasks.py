"""Code tasks with hidden unit tests: seeded, split by problem, and graded by the sandboxed verifier GRPO uses."""

import pytest

from qwenflow.data.code_tasks import CODE_TASK, FAMILIES, code_universe, fenced, split_code_problems
from qwenflow.data.posttrain_data import build_posttrain
from qwenflow.recipe import load_recipe
from qwenflow.verifiers.sandbox import Limits
from qwenflow.verifiers.tasks import TaskVerifier


@pytest.fixture(scope="module")
def universe():
    return code_universe()


def test_generator_is_deterministic_and_every_problem_is_distinct(universe):
    first = universe
    assert code_universe() == first
    assert len({p["question"] for p in first}) == len(first) > 600
    e1, t1 = split_code_problems(50, seed=3, n_train=2000)
    e2, t2 = split_code_problems(50, seed=3, n_train=2000)
    assert (e1, t1) == (e2, t2)
    assert [p["key"] for p in split_code_problems(50, seed=4)[0]] != [p["key"] for p in e1]


def test_every_wrong_solution_fails_its_own_tests_and_every_reference_passes(universe):
    # In-process over the whole universe (our own templates); the sandbox check below runs a sample for real.
    for p in universe:
        exec(p["solution"] + p["answer"], {})
        try:
            exec(p["wrong"] + p["answer"], {})
        except AssertionError:
            continue
        raise AssertionError(f"{p['key']}: the buggy solution passes the hidden tests")


def test_eval_split_never_shares_a_problem_with_training():
    held, train = split_code_problems(200, seed=0, n_train=5000)
    assert len(held) == 200 and len(train) >= 5000
    assert not {p["key"] for p in held} & {p["key"] for p in train}  # not even in another wording
    assert not {p["question"] for p in held} & {p["question"] for p in train}
    assert {p["key"].split(":")[0] for p in train} == {f.name for f in FAMILIES}  # every family still trains


def test_reference_passes_and_buggy_solution_fails_in_the_sandbox_through_the_grpo_verifier(universe):
    one_per_family = {}
    for p in universe:
        one_per_family.setdefault(p["key"].split(":")[0], p)
    ps = list(one_per_family.values())
    completions = [[{"role": "assistant", "content": fenced(p["solution"])}] for p in ps]
    completions += [[{"role": "assistant", "content": fenced(p["wrong"])}] for p in ps]
    verifier = TaskVerifier()
    verifier.code.limits = Limits(timeout_s=60, cpu_s=10, memory_bytes=512 << 20)  # a busy CI box starts slowly
    scores = verifier(
        completions + ["85"],
        task=[CODE_TASK] * (2 * len(ps)) + ["arithmetic"],
        answer=[p["answer"] for p in ps] * 2 + ["85"],
    )
    assert scores == [1.0] * len(ps) + [0.0] * len(ps) + [1.0], verifier.code.counts
    assert verifier.code.counts == {"passed": len(ps), "failed": len(ps)}


def test_posttrain_sets_carry_code_tasks_as_solutions_tests_and_bugs():
    spec = load_recipe(
        "tiny",
        [
            "data.tasks=[arithmetic, python_functions]",
            "data.sft_examples=3000",
            "data.rl_prompts=400",
            "data.preference_pairs=200",
            "data.eval_examples=60",
        ],
    ).data
    post = build_posttrain(spec)
    code_sft = [r for r in post["sft"] if r["task"] == CODE_TASK]
    assert len(code_sft) == 1500
    assert all(r["messages"][1]["content"].startswith("```python\ndef ") and "assert " in r["answer"] for r in code_sft)
    assert len({r["messages"][0]["content"] for r in code_sft}) == 1500  # wordings, not repeats

    def statement(q: str) -> str:  # the problem itself, without the example that varies by wording
        return q.split("\n")[0]

    held = {statement(r["prompt"][0]["content"]) for r in post["eval"][CODE_TASK]}
    assert len(held) == 60
    trained = {statement(r["messages"][0]["content"]) for r in post["sft"]}
    trained |= {statement(r["prompt"][0]["content"]) for r in post["rl"]}
    assert not held & trained
    code_prefs = [r for r in post["preferences_train"] + post["preferences_test"] if r["task"] == CODE_TASK]
    assert code_prefs and all(r["chosen"] != r["rejected"] for r in code_prefs)
    assert {r["task"] for r in post["rl"]} == {"arithmetic", CODE_TASK}
