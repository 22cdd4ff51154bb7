"""MMLU (5-shot, log-likelihood of the answer letter), HellaSwag and TruthfulQA-MC1 (log-likelihood of each option).

MMLU follows the original harness's prompt. The package ships only the test split, so each subject's exemplars are
drawn from its own questions with a seeded RNG and left out of scoring (n = 14,042 - 5 x 57 in the full suite).
HellaSwag scores length-normalised log-likelihood (acc_norm, per byte); TruthfulQA-MC1 the raw sum, as usual.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict

from qwenflow.data.benchmarks import LETTERS, MultipleChoice, load_hellaswag, load_mmlu, load_truthfulqa_mc1

from ..lm import LM, Request
from ..result import TaskResult, dataset_info, mean_stderr, subsample


def mmlu_block(it: MultipleChoice, with_answer: bool) -> str:
    opts = "".join(f"\n{LETTERS[j]}. {c}" for j, c in enumerate(it.choices))
    return f"{it.question}{opts}\nAnswer:" + (f" {LETTERS[it.answer]}\n\n" if with_answer else "")


def mmlu_prompts(items: list[MultipleChoice], shots: int, seed: int) -> tuple[dict[str, str], set[str]]:
    """Per subject: the few-shot header (shared prefix) and the ids of the items used as exemplars."""
    by_subject: dict[str, list[MultipleChoice]] = defaultdict(list)
    for it in items:
        by_subject[it.subject].append(it)
    prefixes: dict = {}
    used: set = set()
    for subject in sorted(by_subject):
        pool = by_subject[subject]
        ex = random.Random(f"{seed}:{subject}").sample(pool, min(shots, len(pool) - 1)) if shots else []
        used.update(e.id for e in ex)
        prefixes[subject] = (
            f"The following are multiple choice questions (with answers) about {subject}.\n\n"
            + "".join(mmlu_block(e, True) for e in ex)
        )
    return prefixes, used


def run_mmlu(lm: LM, limit: int | None = None, shots: int = 5, seed: int = 0, bench=None) -> TaskResult:
    t0 = time.time()
    bench = bench or load_mmlu()
    prefixes, used = mmlu_prompts(bench.items, shots, seed)
    items = subsample([it for it in bench.items if it.id not in used], limit, seed)
    reqs = [
        Request(prefixes[it.subject], mmlu_block(it, False), f" {LETTERS[j]}")
        for it in items
        for j in range(len(it.choices))
    ]
    scores = lm.loglikelihood(reqs)
    correct: list = []
    per_subject: defaultdict[str, list] = defaultdict(list)
    picked: Counter = Counter()
    k = 0
    for it in items:
        s = scores[k : k + len(it.choices)]
        k += len(it.choices)
        pick = max(range(len(s)), key=s.__getitem__)
        picked[LETTERS[pick]] += 1
        ok = float(pick == it.answer)
        correct.append(ok)
        per_subject[it.subject].append(ok)
    acc, se = mean_stderr(correct)
    # A weak model often picks one letter every time: it then scores that letter's share of the answers, not 25%.
    share = lambda c: {x: round(c[x] / max(1, len(items)), 4) for x in sorted(c)}  # noqa: E731
    return TaskResult(
        "mmlu",
        {"accuracy": acc},
        {"accuracy": se},
        len(items),
        shots,
        dataset_info(bench),
        {
            "per_subject": {s: sum(v) / len(v) for s, v in sorted(per_subject.items())},
            "picked_share": share(picked),
            "answer_share": share(Counter(LETTERS[it.answer] for it in items)),
        },
        time.time() - t0,
    )


def _options(lm: LM, task: str, bench, limit, seed, normalise: bool) -> TaskResult:
    t0 = time.time()
    items = subsample(bench.items, limit, seed)
    # The question is the shared prefix: computed once, its options scored together from its KV cache.
    prompt = (lambda it: it.context) if task == "hellaswag" else (lambda it: f"Q: {it.question}\nA:")
    reqs = [Request(prompt(it), "", " " + c) for it in items for c in it.choices]
    scores = lm.loglikelihood(reqs)
    correct, k = [], 0
    for it in items:
        s = scores[k : k + len(it.choices)]
        if normalise:
            s = [v / max(1, len(c.encode())) for v, c in zip(s, it.choices)]
        k += len(it.choices)
        correct.append(float(max(range(len(s)), key=s.__getitem__) == it.answer))
    acc, se = mean_stderr(correct)
    return TaskResult(
        task, {"accuracy": acc}, {"accuracy": se}, len(items), 0, dataset_info(bench), {}, time.time() - t0
    )


def run_hellaswag(lm: LM, limit: int | None = None, seed: int = 0, bench=None) -> TaskResult:
    return _options(lm, "hellaswag", bench or load_hellaswag(), limit, seed, normalise=True)


def run_truthfulqa_mc1(lm: LM, limit: int | None = None, seed: int = 0, bench=None) -> TaskResult:
    return _options(lm, "truthfulqa_mc1", bench or load_truthfulqa_mc1(), limit, seed, normalise=False)
