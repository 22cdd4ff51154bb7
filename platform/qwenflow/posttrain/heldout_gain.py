"""Before/after exact match on the same held-out problems, with standard errors: each accuracy's binomial one and
the gain's paired one (the same items are graded twice, so the gain's error comes from the items that changed)."""

from __future__ import annotations

import math

import pandas as pd


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
