"""GSM8K, 4-shot chain of thought, exact match on the final number (the report's protocol on the shipped sample).

Exemplars (question + worked solution ending in '#### N') are drawn with a seeded RNG and not scored.
"""

from __future__ import annotations

import random
import re
import time

from qwenflow.data.benchmarks import load_gsm8k

from ..lm import LM
from ..result import TaskResult, dataset_info, mean_stderr, subsample

_NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def extract_number(text: str) -> str | None:
    """The number after '####' if the model wrote one, else the last number in its answer."""
    part = text.split("####", 1)[1] if "####" in text else text
    nums = _NUM.findall(part)
    if not nums:
        return None
    return (nums[0] if "####" in text else nums[-1]).replace(",", "").rstrip(".")


def same_number(a: str | None, b: str) -> bool:
    if a is None:
        return False
    try:
        return abs(float(a) - float(b)) < 1e-6
    except ValueError:
        return a.strip() == b.strip()


def run_gsm8k(
    lm: LM, limit: int | None = None, shots: int = 4, seed: int = 0, max_new_tokens: int = 256, bench=None
) -> TaskResult:
    t0 = time.time()
    bench = bench or load_gsm8k()
    ex = random.Random(seed).sample(bench.items, shots) if shots else []
    prefix = "".join(f"Question: {e.question}\nAnswer: {e.solution}\n\n" for e in ex)
    used = {e.id for e in ex}
    items = subsample([it for it in bench.items if it.id not in used], limit, seed)
    outs = lm.generate(
        [f"{prefix}Question: {it.question}\nAnswer:" for it in items],
        max_new_tokens,
        stop=("\n\nQuestion:", "Question:", "\n\n\n"),
    )
    correct = [float(same_number(extract_number(o[0]), it.answer)) for o, it in zip(outs, items)]
    acc, se = mean_stderr(correct)
    return TaskResult(
        "gsm8k",
        {"exact_match": acc},
        {"exact_match": se},
        len(items),
        shots,
        dataset_info(bench),
        {
            "examples": [
                {"id": it.id, "answer": it.answer, "output": o[0][:300]} for it, o in list(zip(items, outs))[:3]
            ]
        },
        time.time() - t0,
    )
