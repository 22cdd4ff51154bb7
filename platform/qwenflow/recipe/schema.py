"""The whole-run recipe: one typed document drives every stage."""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import Strict
from .data import DataSpec
from .deploy import DeploySpec
from .evaluation import EvalSpec
from .model import ModelSpec, TokenizerSpec
from .posttrain import DPOSpec, GRPOSpec, RewardSpec, SFTSpec
from .pretrain import LongContextSpec, PretrainSpec


class TrackingSpec(Strict):
    experiment: str = Field("", description="MLflow experiment name; empty: qwenflow-<recipe name>, one per recipe")


class Recipe(Strict):
    name: str
    description: str = ""
    base_image: str = Field(
        "ghcr.io/qwenflow/train:0.1.0", description="Image the pipeline's components run in (infra/ builds it)"
    )
    model: ModelSpec
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    pretrain: PretrainSpec = Field(default_factory=PretrainSpec)
    long_context: LongContextSpec = Field(default_factory=LongContextSpec)
    sft: SFTSpec = Field(default_factory=SFTSpec)
    reward: RewardSpec = Field(default_factory=RewardSpec)
    dpo: DPOSpec = Field(default_factory=DPOSpec)
    grpo: GRPOSpec = Field(default_factory=GRPOSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    deploy: DeploySpec = Field(default_factory=DeploySpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)

    @model_validator(mode="after")
    def _experiment_per_recipe(self):
        if not self.tracking.experiment:
            self.tracking.experiment = f"qwenflow-{self.name}"
        return self

    @model_validator(mode="after")
    def _stages_consistent(self):
        base_len = self.pretrain.seq_len
        if self.long_context.enabled and self.long_context.seq_lens[0] <= base_len:
            raise ValueError(
                f"long_context.seq_lens[0] ({self.long_context.seq_lens[0]}) must be above "
                f"pretrain.seq_len ({base_len})"
            )
        final_len = self.long_context.seq_lens[-1] if self.long_context.enabled else base_len
        if final_len > self.model.max_position_embeddings:
            raise ValueError(
                f"trained length {final_len} exceeds "
                f"model.max_position_embeddings ({self.model.max_position_embeddings})"
            )
        if self.tokenizer.kind == "bpe" and self.tokenizer.vocab_size > self.model.vocab_size:
            raise ValueError(
                f"tokenizer.vocab_size ({self.tokenizer.vocab_size}) exceeds model.vocab_size ({self.model.vocab_size})"
            )
        if self.tokenizer.kind == "qwen2.5" and self.model.vocab_size < 151665:
            raise ValueError(
                f"model.vocab_size ({self.model.vocab_size}) is below the Qwen2.5 vocabulary (151,665 ids)"
            )
        return self
