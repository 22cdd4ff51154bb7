"""The platform's own held-out verifiable tasks (data_dir/eval/<task>.parquet: prompt messages, task, answer).

Chat-formatted with the model's template, greedy, graded by the row's task verifier (qwenflow.verifiers.tasks, the one
GRPO rewards with): math answers compare by value, code tasks run their hidden unit tests in the sandbox.
These never overlap training (the data stage holds them out), so they measure what SFT/DPO/GRPO taught.
"""

from __future__ import annotations

import time
from pathlib import Path

from qwenflow.artifacts import sha256_file
from qwenflow.verifiers.tasks import CODE_TASKS, TaskVerifier, new_tokens_for

from ..lm import LM
from ..result import TaskResult, mean_stderr, subsample


def heldout_tasks(data_dir: str | Path) -> list[Path]:
    return sorted((Path(data_dir) / "eval").glob("*.parquet"))


def run_heldout(lm: LM, path: Path, limit: int | None = None, seed: int = 0, max_new_tokens: int = 32) -> TaskResult:
    # lazy: imports pandas, pyarrow (396 ms)
    from qwenflow.data.frames import read_frame

    t0 = time.time()
    df = read_frame(path, "eval", ["prompt", "answer"])  # task defaults to the file's name
    rows = subsample(df.to_dict("records"), limit, seed)
    prompts = [lm.chat_prompt([dict(m) for m in r["prompt"]]) for r in rows]
    tasks = [str(r.get("task") or path.stem) for r in rows]
    if set(tasks) & CODE_TASKS:  # a function in a ```python block spans lines and needs room
        outs = lm.generate(prompts, new_tokens_for(tasks, max_new_tokens), stop=("<|im_end|>",))
    else:
        outs = lm.generate(prompts, max_new_tokens, stop=("<|im_end|>", "\n"))
    # Each row by its task's verifier, as GRPO rewards it: math by value, code by its hidden tests in the sandbox.
    scores = TaskVerifier()([o[0] for o in outs], task=tasks, answer=[str(r["answer"]) for r in rows])
    correct = [float(s >= 1.0) for s in scores]
    acc, se = mean_stderr(correct)
    return TaskResult(
        path.stem,
        {"exact_match": acc},
        {"exact_match": se},
        len(rows),
        0,
        {"sha256": sha256_file(path), "source": str(path), "rows": len(df)},
        {"examples": [{"answer": str(r["answer"]), "output": o[0][:100]} for r, o in list(zip(rows, outs))[:5]]},
        time.time() - t0,
    )
