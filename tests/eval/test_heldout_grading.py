"""The platform's held-out tasks in `qwenflow eval`: each split graded by its task's verifier, as GRPO rewards it;
a code split is run against its hidden unit tests, so a model writing the reference function scores 100%."""

import pandas as pd

from qwenflow.data.code_tasks import CODE_TASK, fenced, split_code_problems
from qwenflow.eval.tasks.heldout import run_heldout


class ScriptedLM:
    """Answers each chat prompt with `answer(prompt)`, cut at the first stop string as real generation is."""

    def __init__(self, answer):
        self.answer = answer

    def chat_prompt(self, messages):
        return messages[-1]["content"]

    def generate(self, prompts, max_new_tokens, stop=(), num_samples=1, temperature=0.0, seed=0):
        outs = []
        for p in prompts:
            text = self.answer(p)
            for s in stop:
                text = text.split(s, 1)[0]
            outs.append([text] * num_samples)
        return outs


def _split(tmp_path, rows, name):
    path = tmp_path / f"{name}.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_code_split_scores_by_unit_tests_and_math_by_value(tmp_path):
    held, _ = split_code_problems(4, seed=0)
    code = _split(
        tmp_path,
        [
            {"prompt": [{"role": "user", "content": p["question"]}], "task": CODE_TASK, "answer": p["answer"]}
            for p in held
        ],
        CODE_TASK,
    )
    by_q = {p["question"]: p for p in held}
    right = run_heldout(ScriptedLM(lambda q: fenced(by_q[q]["solution"])), code)
    wrong = run_heldout(ScriptedLM(lambda q: fenced(by_q[q]["wrong"])), code)
    assert (right.metrics["exact_match"], right.n) == (1.0, 4)
    assert wrong.metrics["exact_match"] == 0.0

    arith = _split(
        tmp_path,
        [{"prompt": [{"role": "user", "content": "What is 40 + 45?"}], "task": "arithmetic", "answer": "85"}],
        "arithmetic",
    )
    assert run_heldout(ScriptedLM(lambda q: "85.\nextra line"), arith).metrics["exact_match"] == 1.0
    assert run_heldout(ScriptedLM(lambda q: "84"), arith).metrics["exact_match"] == 0.0
