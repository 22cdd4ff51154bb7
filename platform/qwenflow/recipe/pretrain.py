"""Pre-training and long-context sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import StageBase, Strict
from .ranges import Batch, Coefficient, LearningRate, Length, Steps, Theta


class OptimSpec(Strict):
    learning_rate: LearningRate | Literal["auto"] = Field(
        3e-4, description="Peak LR, or auto to take it from the latest scaling-law fit"
    )
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Final LR as a share of the peak")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up")
    schedule: Literal["cosine", "wsd", "constant"] = Field("cosine", description="cosine, or warmup-stable-decay")
    decay_ratio: float = Field(0.2, gt=0, le=1, description="wsd: share of steps in the final decay")
    weight_decay: Coefficient = 0.1
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0, le=1e6)


class PretrainSpec(StageBase, OptimSpec):
    seq_len: Length = Field(4096, ge=2, description="Tokens per packed sequence")
    global_batch_size: Batch | Literal["auto"] = Field(
        1024, description="Sequences per optimizer step, or auto from the scaling-law fit"
    )
    micro_batch_size: Batch = Field(4, description="Sequences per forward pass per process")
    max_steps: Steps = Field(1000, description="Optimizer steps (fixed counts keep runs reproducible)")
    bf16: bool = Field(True, description="bf16 autocast where the hardware has it")
    checkpoint_every: Steps = Field(200, description="Steps between checkpoints")
    eval_every: Steps = Field(100, description="Steps between held-out loss evaluations")
    compile: bool | Literal["auto"] = Field(
        "auto",
        description="torch.compile the model: true, false, or auto = on for dense models outside DeepSpeed when "
        "the run's estimated compute (~30 min or more) amortises compiling",
    )


class LongContextSpec(StageBase, OptimSpec):
    seq_lens: list[Length] = Field(
        default_factory=lambda: [32768],
        min_length=1,
        description="Stage max lengths; several = Turbo's progressive schedule",
    )
    rope_theta: Theta = Field(1_000_000.0, description="New RoPE base (ABF)")
    long_fraction: float = Field(
        0.4, gt=0, le=1, description="Share of sequences at the stage's max length; the rest shorter"
    )
    retrieval_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Share of training sequences rewritten as synthetic "
        "passkey-retrieval documents over their own text (0 = plain text only)",
    )
    global_batch_size: Batch = 64
    micro_batch_size: Batch = 1
    max_steps: Steps = Field(200, description="Optimizer steps per length stage")
    bf16: bool = True
    checkpoint_every: Steps = 100
    eval_every: Steps = Field(
        10**9, description="Steps between held-out loss evaluations (the end is always evaluated)"
    )
    compile: bool = Field(False, description="torch.compile the model")
    yarn_factor: float = Field(
        4.0, ge=1, le=1024, description="YaRN factor written into the config for inference (off until enabled)"
    )

    @model_validator(mode="after")
    def _lengths_increase(self):
        if sorted(self.seq_lens) != self.seq_lens or len(set(self.seq_lens)) != len(self.seq_lens):
            raise ValueError(f"seq_lens must be strictly increasing, got {self.seq_lens}")
        return self
