"""Evaluation and quality-gate section."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import Resources, Strict
from .ranges import Batch, Count, Samples

TASKS = ("mmlu", "gsm8k", "hellaswag", "truthfulqa_mc1", "humaneval", "perplexity", "heldout", "long_context")


class Gate(Strict):
    metric: str = Field(description="Metric name in the evaluation report, e.g. arithmetic/exact_match")
    min: float | None = Field(None, description="Absolute floor")
    max: float | None = Field(None, description="Absolute ceiling (for lower-is-better metrics such as perplexity)")
    max_regression: float | None = Field(
        None, ge=0, description="Allowed drop against the previous stage or the champion"
    )

    @model_validator(mode="after")
    def _has_a_rule(self):
        if self.min is None and self.max is None and self.max_regression is None:
            raise ValueError(f"gate on {self.metric!r} sets none of min, max, max_regression")
        return self


class LongContextEval(Strict):
    settings: list[str] = Field(
        ["none", "yarn"],
        description="Inference settings compared (qwenflow.longctx: none, yarn, yarn+dca, yarn+dca+sparse)",
    )
    lengths: list[Annotated[float, Field(gt=0, le=1 << 22)]] | None = Field(
        None, description="Context lengths: <= 16 means x trained length, else tokens (None = suite default)"
    )
    depths: list[Annotated[float, Field(ge=0, le=1)]] | None = Field(
        None, description="Needle depths in [0, 1] (None = suite default)"
    )
    samples: Count | None = Field(None, description="Cases per (length, depth) cell (None = suite default)")

    @model_validator(mode="after")
    def _depths(self):
        if self.depths and not all(0.0 <= d <= 1.0 for d in self.depths):
            raise ValueError("long_context.depths must lie in [0, 1]")
        return self


class EvalSpec(Strict):
    enabled: bool = True
    suite: Literal["quick", "full"] = Field("quick", description="quick: subsets; full: every item")
    limit: Count | None = Field(None, description="Items per task (None = suite default)")
    seed: int = 0
    tasks: list[str] | None = Field(None, description=f"Tasks to run (None = all of {', '.join(TASKS)})")
    batch_size: Batch = Field(16, description="Rows per forward pass when scoring and generating")
    humaneval_samples: Samples = Field(10, description="Samples per HumanEval problem in the full suite (pass@k)")
    humaneval_k: list[Samples] = Field([1, 10], description="k values for pass@k (each <= humaneval_samples)")
    humaneval_temperature: float = Field(
        0.8, ge=0, le=100, description="Sampling temperature when humaneval_samples > 1"
    )
    attn_implementation: str | None = Field(None, description="transformers attention implementation (None = default)")
    decontam_max_docs: Count | None = Field(
        None,
        description="Training documents scanned for benchmark overlap (None = all in the full suite, 2000 in quick)",
    )
    long_context: LongContextEval = Field(default_factory=LongContextEval)
    gates: list[Gate] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="after")
    def _check(self):
        unknown = set(self.tasks or ()) - set(TASKS)
        if unknown:
            raise ValueError(f"eval.tasks: unknown {sorted(unknown)}; choose from {', '.join(TASKS)}")
        if any(k < 1 for k in self.humaneval_k):
            raise ValueError("eval.humaneval_k values must be >= 1")
        return self
