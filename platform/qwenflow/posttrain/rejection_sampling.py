"""Rejection-sampling data builder: the current model answers each prompt several times, verifiers label the
answers, passing answers become SFT rows and (pass, fail) answers to the same prompt become DPO pairs. With a
reward model, each side is ranked by its score (the report's offline RL: verifiers and the reward model together):
the best-scored passing answer is paired with the best-scored failing one, the most convincing mistake.

Writes `out_dir/sft/train.parquet` (messages, task, answer) and `out_dir/pairs/train.parquet` (prompt, chosen,
rejected, task), each with a manifest, and returns the counts per task and verifier outcome.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from qwenflow.artifacts import write_manifest
from qwenflow.verifiers.tasks import TaskVerifier

from .common import generate

log = logging.getLogger(__name__)

# Verifier outcomes: the answer passed, failed, or the verifier itself raised (counted, never fatal).
PASS, FAIL, ERROR = "pass", "fail", "error"


def default_verifier() -> Callable[..., list[float]]:
    """Per-row dispatch by task (exact math answers, sandboxed unit tests): `qwenflow.verifiers.tasks`."""

    return TaskVerifier()


@dataclass
class SampledData:
    sft: pd.DataFrame
    pairs: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def label(verifier, task: str, completions: list[str], answer: str) -> list[str]:
    """PASS (full score), FAIL, or ERROR for each completion; a verifier that raises or returns NaN is counted."""
    try:
        scores = [
            float(s) for s in verifier(completions, task=[task] * len(completions), answer=[answer] * len(completions))
        ]
    except Exception as e:  # a broken verifier must not stop the builder: count it and move on
        log.warning("verifier for task %r raised %s: %s", task, type(e).__name__, e)
        return [ERROR] * len(completions)
    return [ERROR if math.isnan(s) else PASS if s >= 1.0 else FAIL for s in scores]


def rejection_sample(
    model,
    tok,
    prompts: pd.DataFrame,
    *,
    samples_per_prompt: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    batch_size: int = 32,
    verifier=None,
    scorer=None,
) -> SampledData:
    """Sample, label and split into SFT rows (distinct passing answers) and DPO pairs (each distinct failing answer
    against a passing one).

    verifier: a reward function `f(completions, task=[...], answer=[...]) -> list[float]` (1.0 = pass).
    scorer: optional reward model `f(completions, prompts) -> list[float]`; both sides are ranked by it, best first.
    """
    verifier = verifier or default_verifier()
    completions = generate(
        model,
        tok,
        list(prompts["prompt"]),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        do_sample=True,
        temperature=temperature,
        num_return_sequences=samples_per_prompt,
    )
    rm = None
    if scorer is not None:
        rm = dict(
            zip(
                range(len(completions)),
                scorer(completions, [p for p in prompts["prompt"] for _ in range(samples_per_prompt)]),
            )
        )
    counts: Counter = Counter()
    sft_rows, pair_rows = [], []
    for i, row in enumerate(prompts.itertuples(index=False)):
        outs = completions[i * samples_per_prompt : (i + 1) * samples_per_prompt]
        labels = label(verifier, row.task, outs, row.answer)
        for lab in labels:
            counts[f"{row.task}/{lab}"] += 1
        order = list(range(len(outs)))
        if rm is not None:
            order = sorted(order, key=lambda k: -rm[i * samples_per_prompt + k])
        passed = list(dict.fromkeys(outs[k] for k in order if labels[k] == PASS))
        failed = list(dict.fromkeys(outs[k] for k in order if labels[k] == FAIL and outs[k] not in passed))
        counts[f"{row.task}/prompts_all_pass"] += int(bool(passed) and not failed)
        counts[f"{row.task}/prompts_all_fail"] += int(not passed)
        prompt = list(row.prompt)
        for c in passed:
            sft_rows.append(
                {"messages": prompt + [{"role": "assistant", "content": c}], "task": row.task, "answer": row.answer}
            )
        # every distinct failing answer is rejected once, against the passing answers in rank order (cycled): a
        # prompt with one right and three different wrong answers gives three pairs
        for good, bad in zip(passed * len(failed), failed) if passed else ():
            pair_rows.append(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": good}],
                    "rejected": [{"role": "assistant", "content": bad}],
                    "task": row.task,
                }
            )
    counts["sft_rows"], counts["pairs"] = len(sft_rows), len(pair_rows)
    sft = pd.DataFrame(sft_rows, columns=["messages", "task", "answer"])
    pairs = pd.DataFrame(pair_rows, columns=["prompt", "chosen", "rejected", "task"])
    return SampledData(sft, pairs, dict(counts))


def write_sampled(data: SampledData, out_dir: str | Path, **manifest) -> Path:
    """out_dir/sft/train.parquet and out_dir/pairs/train.parquet, each with a manifest."""

    out_dir = Path(out_dir)
    for sub, df in (("sft", data.sft), ("pairs", data.pairs)):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
        df.to_parquet(out_dir / sub / "train.parquet")
        write_manifest(out_dir / sub, rows=len(df), counts=data.counts, **manifest)
    return out_dir
