"""What one task returns, and the small statistics every task shares."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TaskResult:
    task: str
    metrics: dict[str, float]  # e.g. {"accuracy": 0.25}
    stderr: dict[str, float]  # standard error of each metric where it is a mean
    n: int  # items scored
    shots: int = 0
    dataset: dict[str, Any] = field(default_factory=dict)  # sha256, source, skipped rows
    details: dict[str, Any] = field(default_factory=dict)  # per-subject scores, grids, ...
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n)); 0 stderr for fewer than two values."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(values) / n
    if n < 2:
        return m, 0.0
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, math.sqrt(var / n)


def subsample(items: list, limit: int | None, seed: int) -> list:
    """A reproducible subset (order kept) or everything."""
    if limit is None or limit >= len(items):
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]


def dataset_info(bench) -> dict:
    return {"sha256": bench.sha256, "source": bench.source, "rows": len(bench.items), "skipped": bench.skipped}
