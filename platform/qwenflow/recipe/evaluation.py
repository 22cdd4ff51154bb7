"""Evaluation and quality-gate section."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Resources, Strict


class Gate(Strict):
    metric: str = Field(description="Metric name in the evaluation report, e.g. arithmetic/exact_match")
    min: float | None = Field(None, description="Absolute floor")
    max_regression: float | None = Field(None, ge=0, description="Allowed drop against the previous stage or the champion")


class EvalSpec(Strict):
    enabled: bool = True
    suite: Literal["quick", "full"] = Field("quick", description="quick: subsets; full: every item")
    limit: int | None = Field(None, gt=0, description="Items per task (None = suite default)")
    seed: int = 0
    gates: list[Gate] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
