"""The platform's own held-out verifiable tasks (data_dir/eval/<task>.parquet: prompt messages, task, answer).

Chat-formatted with the model's template, greedy, scored by exact match after trimming (numbers compare as numbers).
These never overlap training (the data stage holds them out), so they measure what SFT/DPO/GRPO taught.
"""
from __future__ import annotations

import time
from pathlib import Path

from qwenflow.artifacts import sha256_file

from ..lm import LM
from ..result import TaskResult, mean_stderr, subsample


def normalise(text: str) -> str:
    t = text.strip().rstrip(".").strip()
    try:
        f = float(t.replace(",", ""))
        return str(int(f)) if f == int(f) else str(f)
    except ValueError:
        return t


def heldout_tasks(data_dir: str | Path) -> list[Path]:
    return sorted((Path(data_dir) / "eval").glob("*.parquet"))


def run_heldout(lm: LM, path: Path, limit: int | None = None, seed: int = 0,
                max_new_tokens: int = 32) -> TaskResult:
    import pandas as pd

    t0 = time.time()
    df = pd.read_parquet(path)
    missing = {"prompt", "answer"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected prompt (messages), task, answer")
    rows = subsample(df.to_dict("records"), limit, seed)
    prompts = [lm.chat_prompt([dict(m) for m in r["prompt"]]) for r in rows]
    outs = lm.generate(prompts, max_new_tokens, stop=("<|im_end|>", "\n"))
    correct = [float(normalise(o[0]) == normalise(str(r["answer"]))) for o, r in zip(outs, rows)]
    acc, se = mean_stderr(correct)
    return TaskResult(path.stem, {"exact_match": acc}, {"exact_match": se}, len(rows), 0,
                      {"sha256": sha256_file(path), "source": str(path), "rows": len(df)},
                      {"examples": [{"answer": str(r["answer"]), "output": o[0][:100]}
                                    for r, o in list(zip(rows, outs))[:5]]}, time.time() - t0)
