"""HumanEval: 0-shot completions executed with the problem's tests in the sandbox; pass@1 and pass@k.

pass@k uses the unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), averaged over problems.
With one sample it is greedy pass@1.
"""

from __future__ import annotations

import time

import numpy as np

from qwenflow.data.benchmarks import load_humaneval
from qwenflow.verifiers.sandbox import Limits, run_many

from ..lm import LM
from ..result import TaskResult, dataset_info, mean_stderr, subsample

STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples of which c passed."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def execute(
    problems, completions: list[list[str]], limits: Limits = Limits(timeout_s=10, cpu_s=10), workers: int | None = None
) -> list[list[str]]:
    """Sandbox status of every completion, problems x samples."""
    flat = [(p, c) for p, cs in zip(problems, completions) for c in cs]
    res = run_many([p.program(c) for p, c in flat], limits, workers, progress=True, tests=[p.tests() for p, _ in flat])
    out: list[list[str]] = []
    k = 0
    for cs in completions:
        out.append([r.status for r in res[k : k + len(cs)]])
        k += len(cs)
    return out


def run_humaneval(
    lm: LM,
    limit: int | None = None,
    seed: int = 0,
    samples: int = 1,
    ks: tuple[int, ...] = (1,),
    temperature: float = 0.8,
    max_new_tokens: int = 384,
    bench=None,
) -> TaskResult:
    t0 = time.time()
    bench = bench or load_humaneval()
    problems = subsample(bench.items, limit, seed)
    gens = lm.generate(
        [p.prompt for p in problems],
        max_new_tokens,
        stop=STOP,
        num_samples=samples,
        temperature=temperature if samples > 1 else 0.0,
        seed=seed,
    )
    statuses = execute(problems, gens)
    metrics, stderr = {}, {}
    for k in sorted(set(ks) | {1}):
        if k > samples:
            continue
        per = [pass_at_k(len(s), sum(x == "passed" for x in s), k) for s in statuses]
        metrics[f"pass_at_{k}"], stderr[f"pass_at_{k}"] = mean_stderr(per)  # MLflow names: no "@"
    counts: dict[str, int] = {}
    for s in statuses:
        for x in s:
            counts[x] = counts.get(x, 0) + 1
    return TaskResult(
        "humaneval",
        metrics,
        stderr,
        len(problems),
        0,
        dataset_info(bench),
        {"samples": samples, "temperature": temperature if samples > 1 else 0.0, "outcomes": counts},
        time.time() - t0,
    )
