"""Reward model evaluation: pairwise accuracy (chosen scored strictly above rejected) on the held-out preference
pairs of a prepared data directory and on BIG-bench hhh_alignment (evaluation only: BIG-bench data carries a canary).

hhh_alignment ships in no package pip can install here (see `benchmarks.HHH_HOWTO`): without it the report says
so under `skipped`, and `--hhh-alignment DIR` points the evaluation at the folder.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from qwenflow.artifacts import sha256_file
from qwenflow.data.benchmarks import Benchmark, BenchmarkUnavailable, load_hhh_alignment
from qwenflow.data.frames import read_frame
from qwenflow.posttrain.scoring import RewardScorer

from .lm import check_model_dir
from .result import TaskResult, mean_stderr, subsample


def pairwise(rm, task: str, prompts, chosen, rejected, dataset: dict, t0: float, groups=None) -> TaskResult:
    """Pairwise accuracy and mean margin; `groups` (one label per pair) adds a per-group accuracy."""
    sc = rm([p + c for p, c in zip(prompts, chosen)])
    sr = rm([p + r for p, r in zip(prompts, rejected)])
    wins = [float(a > b) for a, b in zip(sc, sr)]
    acc, se = mean_stderr(wins)
    margin = sum(a - b for a, b in zip(sc, sr)) / max(1, len(sc))
    details: dict[str, object] = {"ties": int(sum(a == b for a, b in zip(sc, sr)))}
    if groups:
        by = defaultdict(list)
        for g, w in zip(groups, wins):
            by[g].append(w)
        details["per_subset"] = {g: {"pairwise_accuracy": sum(v) / len(v), "n": len(v)} for g, v in sorted(by.items())}
    return TaskResult(
        task,
        {"pairwise_accuracy": acc, "mean_margin": margin},
        {"pairwise_accuracy": se},
        len(wins),
        0,
        dataset,
        details,
        time.time() - t0,
    )


def preference_pairs(rm, data_dir: Path, limit: int | None, seed: int) -> TaskResult:

    t0 = time.time()
    path = Path(data_dir) / "preferences" / "test.parquet"  # the held-out pairs
    rows = subsample(read_frame(path, "preferences").to_dict("records"), limit, seed)
    for i, r in enumerate(rows):
        if any(r.get(k) is None or len(r[k]) == 0 for k in ("prompt", "chosen", "rejected")):
            raise ValueError(f"{path}: row {i} lacks prompt, chosen or rejected messages")
    msgs = lambda m: [dict(x) for x in m]  # noqa: E731
    return pairwise(
        rm,
        "preferences",
        [msgs(r["prompt"]) for r in rows],
        [msgs(r["chosen"]) for r in rows],
        [msgs(r["rejected"]) for r in rows],
        {"sha256": sha256_file(path), "source": str(path), "rows": len(rows)},
        t0,
    )


def hhh_pairs(rm, bench: Benchmark, limit: int | None, seed: int) -> TaskResult:
    t0 = time.time()
    items = subsample(bench.items, limit, seed)
    user = lambda t: [{"role": "user", "content": t}]  # noqa: E731
    bot = lambda t: [{"role": "assistant", "content": t}]  # noqa: E731
    return pairwise(
        rm,
        "hhh_alignment",
        [user(i.prompt) for i in items],
        [bot(i.chosen) for i in items],
        [bot(i.rejected) for i in items],
        {"sha256": bench.sha256, "source": bench.source, "rows": len(bench), "skipped": bench.skipped},
        t0,
        groups=[i.subset for i in items],
    )


def run_reward_eval(
    model_dir, data_dir=None, limit: int | None = None, seed: int = 0, hhh_dir=None, batch_size: int = 16
) -> tuple[list[TaskResult], dict, dict, dict]:
    """(results, skipped, errors, benchmarks) for a reward model directory."""
    rm = RewardScorer(check_model_dir(model_dir), batch_size=batch_size)
    results, skipped, errors, benches = [], {}, {}, {}
    if data_dir is None:
        skipped["preferences"] = "no --data directory: held-out preference pairs come from the data stage"
    else:
        try:
            results.append(preference_pairs(rm, Path(data_dir), limit, seed))
        except (FileNotFoundError, ValueError, KeyError) as e:
            errors["preferences"] = str(e)
    try:
        benches["hhh_alignment"] = load_hhh_alignment(hhh_dir)
        results.append(hhh_pairs(rm, benches["hhh_alignment"], limit, seed))
    except BenchmarkUnavailable as e:
        skipped["hhh_alignment"] = str(e)
    except (FileNotFoundError, ValueError) as e:  # an explicit folder that is not hhh_alignment
        errors["hhh_alignment"] = str(e)
    return results, skipped, errors, benches
