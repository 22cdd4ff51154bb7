"""The harness against known answers: scripted models whose correct score is known in advance."""

import time

from qwenflow.data.benchmarks import LETTERS, load_gsm8k, load_humaneval, load_mmlu, load_truthfulqa_mc1
from qwenflow.eval.lm import Request
from qwenflow.eval.tasks import gsm8k, humaneval
from qwenflow.eval.tasks import multiple_choice as mc


class ScriptedLM:
    """Scores a continuation 0 when `pick(request)` says so, else -10; generates what `answer(prompt)` says."""

    def __init__(self, pick=None, answer=None):
        self.pick, self.answer = pick, answer

    def loglikelihood(self, requests: list[Request]) -> list[float]:
        return [0.0 if self.pick(r) else -10.0 for r in requests]

    def generate(self, prompts, max_new_tokens, stop=(), num_samples=1, temperature=0.0, seed=0):
        return [[self.answer(p)] * num_samples for p in prompts]


def test_mmlu_oracle_scores_100_and_always_a_scores_the_share_of_a():
    bench = load_mmlu()
    truth = {mc.mmlu_block(it, False): f" {LETTERS[it.answer]}" for it in bench.items}
    oracle = mc.run_mmlu(ScriptedLM(pick=lambda r: truth[r.context] == r.continuation), bench=bench)
    _, used = mc.mmlu_prompts(bench.items, 5, 0)
    scored = [it for it in bench.items if it.id not in used]
    assert oracle.n == len(scored) == 14042 - 5 * 57
    assert oracle.metrics["accuracy"] == 1.0
    always_a = mc.run_mmlu(ScriptedLM(pick=lambda r: r.continuation == " A"), bench=bench)
    share_a = sum(it.answer == 0 for it in scored) / len(scored)
    assert abs(always_a.metrics["accuracy"] - share_a) < 1e-12 and 0.2 < share_a < 0.26
    assert always_a.details["picked_share"] == {"A": 1.0} and always_a.details["answer_share"]["A"] == round(share_a, 4)
    assert always_a.dataset["sha256"] == bench.sha256


def test_fewshot_prompts_are_reproducible_from_the_seed():
    items = load_mmlu().items
    assert mc.mmlu_prompts(items, 5, 0) == mc.mmlu_prompts(items, 5, 0)
    assert mc.mmlu_prompts(items, 5, 0)[1] != mc.mmlu_prompts(items, 5, 1)[1]


def test_truthfulqa_oracle_and_first_choice():
    bench = load_truthfulqa_mc1()
    truth = {f"Q: {it.question}\nA:": " " + it.choices[it.answer] for it in bench.items}
    assert (
        mc.run_truthfulqa_mc1(ScriptedLM(pick=lambda r: truth[r.prefix] == r.continuation)).metrics["accuracy"] == 1.0
    )
    first = {f"Q: {it.question}\nA:": " " + it.choices[0] for it in bench.items}
    res = mc.run_truthfulqa_mc1(ScriptedLM(pick=lambda r: first[r.prefix] == r.continuation))
    assert res.metrics["accuracy"] == sum(it.answer == 0 for it in bench.items) / len(bench)


def test_gsm8k_exact_numeric_match():
    bench = load_gsm8k()
    answers = {it.question: it.answer for it in bench.items}

    def solve(prompt):
        q = prompt.rsplit("Question: ", 1)[1].rsplit("\nAnswer:", 1)[0]
        return f" Some steps, 1 + 2 = 3.\n#### {int(answers[q]):,}"  # thousands separators must not matter

    res = gsm8k.run_gsm8k(ScriptedLM(answer=solve), bench=bench)
    assert res.metrics["exact_match"] == 1.0 and res.n == 96 and res.shots == 4
    wrong = gsm8k.run_gsm8k(ScriptedLM(answer=lambda p: " I think 12345678"), bench=bench)
    assert wrong.metrics["exact_match"] == 0.0


def test_pass_at_k_estimator():
    assert humaneval.pass_at_k(10, 3, 1) == 0.3 or abs(humaneval.pass_at_k(10, 3, 1) - 0.3) < 1e-12
    assert humaneval.pass_at_k(10, 0, 5) == 0.0 and humaneval.pass_at_k(10, 6, 5) == 1.0
    assert abs(humaneval.pass_at_k(4, 1, 2) - 0.5) < 1e-12  # 1 - C(3,2)/C(4,2)


def test_humaneval_canonical_solutions_all_pass_in_the_sandbox():
    bench = load_humaneval()
    t = time.monotonic()
    statuses = humaneval.execute(bench.items, [[p.canonical_solution] for p in bench.items], workers=4)
    took = time.monotonic() - t
    failed = [(p.task_id, s) for p, s in zip(bench.items, statuses) if s != ["passed"]]
    assert not failed, failed
    print(f"164 canonical solutions in {took:.1f} s")
    broken = humaneval.execute(
        bench.items[:3],
        [["    while True:\n        pass\n"], ["    import sys\n    sys.exit(0)\n"], ["    return None\n"]],
        workers=3,
    )
    assert [s[0] for s in broken] == ["timeout", "error", "failed"]
