"""The batched, prefix-cached scorer and batched generation agree with the plain one-at-a-time computation."""

import torch

from qwenflow.eval.lm import HFModel, Request


def naive_loglikelihood(lm, r: Request) -> float:
    ctx, cont = lm.encode(r.prefix) + lm.encode(r.context), lm.encode(r.continuation)
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(torch.tensor([ctx + cont])).logits[0].float(), -1)
    return sum(float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))


def test_cached_batched_scores_match_naive(tiny_model_dir):
    lm = HFModel(tiny_model_dir, batch_size=3)
    reqs = [
        Request("The following are questions.\n\n", f"Question {q}: pick one\nAnswer:", f" {c}")
        for q in range(4)
        for c in "ABCD"
    ]
    reqs += [Request("def add(a, b):", "", ending) for ending in ("\n    return a + b", "\n    pass", " ...")]
    reqs += [Request("", "import os", " path")]
    fast = lm.loglikelihood(reqs)
    for got, r in zip(fast, reqs):
        assert abs(got - naive_loglikelihood(lm, r)) < 1e-3


def test_batched_greedy_generation_matches_single(tiny_model_dir):
    lm = HFModel(tiny_model_dir, batch_size=4)
    prompts = ["def f(x):", "import sys\nprint(", "class A:\n    def __init__(self"]
    batched = lm.generate(prompts, 8)
    single = [lm.generate([p], 8)[0] for p in prompts]
    assert batched == single
