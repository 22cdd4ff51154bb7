"""Post-training sections: SFT, reward model, DPO (with the Online Merging Optimizer), GRPO."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import StageBase
from .ranges import Batch, Coefficient, Count, Epochs, LearningRate, Length, Samples, Seconds, Steps, Temperature


class _Batched(StageBase):
    learning_rate: LearningRate
    global_batch_size: Batch = 64
    micro_batch_size: Batch = 8
    weight_decay: Coefficient = 0.1
    grad_clip: float = Field(1.0, gt=0, le=1e6)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    max_steps: Steps | None = Field(None, description="Stop after this many steps (overrides epochs)")
    epochs: Epochs = 1.0
    max_seq_len: Length = 4096
    bf16: bool = True
    logging_steps: Steps = Field(10, description="Optimizer steps between logged training metrics")
    checkpoint_every: Steps = Field(
        200,
        description="Optimizer steps between checkpoints in the stage's work "
        "directory (a rerun with resume continues from the newest complete one)",
    )
    keep_checkpoints: int = Field(2, ge=1, le=1000, description="Complete checkpoints kept; older ones are deleted")


class SFTSpec(_Batched):
    learning_rate: LearningRate = Field(7e-6, description="Peak LR, decayed to min_learning_rate")
    min_learning_rate: float = Field(7e-7, ge=0, le=1.0)
    epochs: Epochs = 2.0
    max_seq_len: Length = 32768
    packing: bool = True
    assistant_only_loss: bool = True
    two_stage: bool = Field(False, description="Turbo variant: short instructions first, then short+long mixed")
    short_max_len: Length = Field(32768, description="Two-stage: length limit of stage 1")

    @model_validator(mode="after")
    def _two_stage_splits(self):
        if self.two_stage and self.short_max_len >= self.max_seq_len:
            raise ValueError(
                f"two_stage needs short_max_len ({self.short_max_len}) below max_seq_len "
                f"({self.max_seq_len}), or stage 1 is the same data as stage 2"
            )
        return self


class RewardSpec(_Batched):
    learning_rate: LearningRate = 5e-6
    heldout_fraction: float = Field(0.1, gt=0, lt=0.5)


class DPOSpec(_Batched):
    learning_rate: LearningRate = 7e-7
    beta: Coefficient = Field(0.1, gt=0, description="DPO beta (the report does not give one)")
    sft_loss_weight: Coefficient = Field(
        0.0,
        description="Weight of a negative log-likelihood term on the chosen answers added to the DPO loss (RPO, "
        "Pang et al. 2024; Llama 3 used 0.2): keeps DPO from lowering the chosen answers' likelihood with the "
        "rejected ones'. 0 = plain DPO",
    )
    optimizer: Literal["adamw", "ondare_adamw", "onties_adamw"] = Field(
        "onties_adamw", description="Online Merging Optimizer variant or plain AdamW"
    )
    merge_reserve_p: float = Field(0.01, gt=0, le=1, description="Share of the update kept when sparsifying")
    merge_alpha: float = Field(1e-7, ge=0, le=1, description="Weight of the reference delta merged into each step")
    samples_per_prompt: Samples = Field(4, ge=2, description="Rejection sampling: answers drawn per prompt")
    max_prompts: Count | None = Field(
        None, description="Rejection sampling: prompts used from rl/prompts.parquet (None = all)"
    )
    sample_temperature: Temperature = Field(1.0, description="Rejection sampling: sampling temperature")
    max_new_tokens: Length = Field(1024, description="Rejection sampling: longest answer sampled, in tokens")
    min_pairs: Count = Field(
        64, description="Fewer rejection-sampled pairs than this: train on preferences/ instead (logged)"
    )
    merge_base: str | None = Field(
        None,
        description="Model the starting (SFT) model was tuned from; the merging optimizer's reference delta is "
        "start - base. Default: the starting model's lineage parent; none found: zero delta",
    )

    @model_validator(mode="after")
    def _merging_needs_whole_parameters(self):
        # DeepSpeed ZeRO hands the optimizer flat partitions that mix parameters, so the Online Merging Optimizer's
        # per-parameter top-k and sign election could not be computed; FSDP2 keeps one (sharded) tensor per parameter.
        if self.optimizer != "adamw" and self.distributed.strategy in ("zero2", "zero3"):
            raise ValueError(
                f"dpo.optimizer={self.optimizer} needs whole parameters: use distributed.strategy ddp or "
                "fsdp2 (ZeRO flattens parameters into partitions), or optimizer adamw"
            )
        return self


class GRPOSpec(_Batched):
    learning_rate: LearningRate = 1e-6
    num_generations: Samples = Field(8, ge=2, description="Responses per prompt")
    max_completion_length: Length = 1024
    temperature: Temperature = 1.0
    beta: Coefficient = Field(0.0, description="KL coefficient to the reference model")
    reward_weights: dict[str, float] = Field(
        default_factory=lambda: {"reward_model": 1.0, "verifier": 1.0}, description="Weight of each reward source"
    )
    min_reward_model_accuracy: float = Field(
        0.6,
        ge=0,
        le=1,
        description="A reward model whose held-out pairwise accuracy (recorded in its lineage) is "
        "below this is left out of the reward: GRPO would climb its noise instead of the task. 0 always uses it",
    )
    order_by_variance: bool = Field(True, description="Process prompts with the highest reward variance first")
    global_batch_size: Batch = 2048
    reward_on_error: Literal["zero", "skip", "stop"] = Field(
        "zero",
        description="A reward function that raises, hangs or returns NaN: score 0, skip the score, or stop the run",
    )
    reward_timeout_s: Seconds = Field(60.0, description="A reward call taking longer than this counts as failed")

    @model_validator(mode="after")
    def _known_rewards(self):
        unknown = set(self.reward_weights) - {"reward_model", "verifier", "format"}
        if unknown:
            raise ValueError(
                f"reward_weights: unknown reward source(s) {sorted(unknown)}; use reward_model, verifier, format"
            )
        if not any(w != 0 for w in self.reward_weights.values()):
            raise ValueError("reward_weights: every weight is 0, so GRPO has no reward")
        return self

    @model_validator(mode="after")
    def _groups_fit(self):
        if self.global_batch_size % self.num_generations:
            raise ValueError(
                f"num_generations ({self.num_generations}) must divide global_batch_size ({self.global_batch_size})"
            )
        return self
