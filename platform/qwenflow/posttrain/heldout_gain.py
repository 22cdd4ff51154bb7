"""Before/after exact match on the same held-out problems, with standard errors: each accuracy's binomial one and
the gain's paired one (the same items are graded twice, so the gain's error comes from the items that changed).
HeldoutExactMatch is how SFT, DPO and GRPO measure and log them, all three the same way."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .common import evaluate_exact_match, log_samples


def exact_match_gain(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, dict]:
    """{task: {n, before, before_stderr, after, after_stderr, gain, gain_stderr}} from two `evaluate_exact_match`
    tables (prompt, answer, correct, task) over the same rows in the same order."""
    if len(before) != len(after) or list(before["prompt"]) != list(after["prompt"]):
        raise ValueError("before/after exact-match tables must grade the same held-out rows in the same order")
    out = {}
    for task in dict.fromkeys(before["task"]):
        b = before.loc[before["task"] == task, "correct"].astype(float).to_numpy()
        a = after.loc[after["task"] == task, "correct"].astype(float).to_numpy()
        n = len(b)
        d = a - b
        sd = float(d.std(ddof=1)) if n > 1 else 0.0
        out[task] = {
            "n": n,
            "before": float(b.mean()),
            "before_stderr": math.sqrt(b.mean() * (1 - b.mean()) / n),
            "after": float(a.mean()),
            "after_stderr": math.sqrt(a.mean() * (1 - a.mean()) / n),
            "gain": float(d.mean()),
            "gain_stderr": sd / math.sqrt(n),
        }
    return out


def log_gain(gain: dict[str, dict]) -> None:
    """MLflow metrics `eval/<task>/exact_match_{stderr_before,stderr_after,gain,gain_stderr}` and a table."""
    # lazy: 293 ms to import, needed only here
    from qwenflow.tracking import main_mlflow as mlflow

    if mlflow.active_run() is None:
        return
    for task, g in gain.items():
        mlflow.log_metrics(
            {
                f"eval/{task}/exact_match_stderr_before": g["before_stderr"],
                f"eval/{task}/exact_match_stderr_after": g["after_stderr"],
                f"eval/{task}/exact_match_gain": g["gain"],
                f"eval/{task}/exact_match_gain_stderr": g["gain_stderr"],
                f"eval/{task}/n": g["n"],
            }
        )
    mlflow.log_table(
        data=pd.DataFrame([{"task": t, **g} for t, g in gain.items()]), artifact_file="exact_match_before_after.json"
    )


class HeldoutExactMatch:
    """Greedy exact match on `data_dir/eval` before and after a stage trains. Each measurement logs its sample table
    (`samples/<when>.json`) and `eval/<task>/exact_match_<when>`; `after` adds the gain (log_gain). Each returns the
    result/lineage keys it adds: exact_match_before; exact_match_after and exact_match_gain."""

    def __init__(self, data_dir: str | Path, *, max_new_tokens: int = 16):
        self.data_dir, self.max_new_tokens = data_dir, max_new_tokens
        self.tables: dict[str, pd.DataFrame] = {}  # "before" / "after": the graded samples

    def before(self, model, tok) -> dict:
        return {"exact_match_before": self._measure(model, tok, "before")}

    def after(self, model, tok) -> dict:
        after = self._measure(model, tok, "after")
        gain = exact_match_gain(self.tables["before"], self.tables["after"])
        log_gain(gain)
        return {"exact_match_after": after, "exact_match_gain": gain}

    def _measure(self, model, tok, when: str) -> dict[str, float]:
        # lazy: 293 ms to import, needed only here
        from accelerate.utils import extract_model_from_parallel

        from qwenflow.tracking import main_mlflow as mlflow

        # Training under bf16 autocast leaves accelerate's autocast wrapper on the model's forward: grade the fp32
        # weights the stage saves (and a user loads), not their bf16 forward (they disagreed on 3 of 200 sums).
        model = extract_model_from_parallel(model, keep_fp32_wrapper=False)
        scores, table = evaluate_exact_match(model, tok, self.data_dir, max_new_tokens=self.max_new_tokens)
        self.tables[when] = table
        log_samples(table, when)
        if mlflow.active_run() is not None:
            mlflow.log_metrics({f"eval/{t}/exact_match_{when}": v for t, v in scores.items()})
        return scores
