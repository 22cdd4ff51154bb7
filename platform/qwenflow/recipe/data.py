"""Data section: sources, cleaning thresholds, domain mixture, decontamination, synthetic post-training data."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Resources, Strict
from .contracts import ContractSpec
from .ranges import Bytes, Chars, Count


class DataSpec(Strict):
    sources: list[str] = Field(
        default_factory=lambda: [
            "python_stdlib",
            "go_src",
            "python_docs",
            "linux_docs",
            "gcide",
            "shakespeare",
            "fortunes",
            "bible",
            "math_synthetic",
        ],
        description="Named real sources (see `qwenflow data sources`) or paths to JSONL/Parquet/text folders",
    )
    max_bytes_per_source: Bytes = Field(16_000_000, description="Cap on raw bytes read from each source")
    mixture: dict[str, float] = Field(
        default_factory=lambda: {"code": 0.35, "reference": 0.25, "literature": 0.2, "web": 0.1, "math": 0.1},
        description="Target share of tokens per domain after re-balancing",
    )
    max_upsample: float = Field(
        3.0, ge=1, le=100, description="Most times a scarce domain's documents may be repeated to reach the mixture"
    )
    min_chars: Chars = Field(200, description="Drop documents shorter than this")
    max_chars: Chars = Field(200_000, gt=0, description="Split documents longer than this")
    max_symbol_ratio: float = Field(
        0.3, gt=0, le=1, description="Drop documents with more non-alphanumeric, non-space characters than this"
    )
    max_repetition: float = Field(
        0.3, ge=0, le=1, description="Drop documents whose share of duplicated lines exceeds this"
    )
    quality_threshold: float = Field(
        0.1, ge=0, le=1, description="Drop documents the learned quality scorer rates below this"
    )
    near_dup_threshold: float = Field(
        0.8, gt=0, le=1, description="MinHash Jaccard above which documents are near-duplicates"
    )
    minhash_perm: int = Field(128, gt=0, le=4096)
    decontam_min_tokens: int = Field(13, gt=0, le=10_000, description="LCS length (tokens) that marks contamination")
    decontam_min_ratio: float = Field(
        0.6, gt=0, le=1, description="LCS share of the shorter text that marks contamination"
    )
    heldout_fraction: float = Field(0.02, gt=0, lt=0.5, description="Share of documents held out for validation")
    sft_examples: Count = Field(20000, description="Synthetic + real conversations for SFT")
    rl_prompts: Count = Field(4000, description="Verifiable prompts for GRPO / rejection sampling")
    eval_examples: Count = Field(200, description="Held-out verifiable problems per task")
    preference_pairs: Count = Field(
        2000, description="Chosen/rejected pairs (verified answer vs a plausible wrong one) for the reward model"
    )
    tasks: list[str] = Field(
        default_factory=lambda: ["arithmetic"],
        description="Verifiable task families for post-training: 'arithmetic', 'python_functions' "
        "(write a function; graded by hidden unit tests in the sandbox), 'chat' "
        "or reasoning-gym dataset names",
    )
    arithmetic_ops: str = Field(
        "+-",
        pattern=r"^(\+-|\+|-)$",
        description="Operations of the 'arithmetic' task (two-digit operands): '+-', '+' or '-'",
    )
    arithmetic_max_answer: int | None = Field(
        None,
        ge=0,
        le=198,
        description="Keep only 'arithmetic' problems whose answer is at most this (99 with '+': sums below 100, "
        "every answer two digits long)",
    )
    chat_fraction: float = Field(
        0.1, ge=0, lt=1, description="Share of SFT conversations taken from real chat (chatterbot-corpus)"
    )
    tool_examples: int = Field(
        0,
        ge=0,
        le=10**6,
        description="Tool-use conversations in Qwen2.5's <tool_call> format added to SFT "
        "(data/tool_calls.py); each is ~250-430 tokens with a small BPE",
    )
    decontaminate: bool = Field(True, description="Drop training texts that overlap any evaluation set (LCS rule)")
    workers: int = Field(
        0,
        ge=0,
        le=4096,
        description="Processes for the per-record corpus work (cleaning, MinHash signatures, "
        "quality features, decontamination), or Ray CPUs with engine: ray; "
        "0 = every core. Results do not depend on it",
    )
    engine: Literal["local", "ray"] = Field(
        "local",
        description="local: one process (with a fork pool for the per-record work); ray: Ray Data (a local "
        "Ray instance on this machine, a KubeRay RayJob on the cluster). Same datasets either way",
    )
    ray_object_store_mb: int = Field(
        0,
        ge=0,
        le=1 << 30,
        description="Ray object store per node in MB (0 = Ray's default, 30% of memory); cap it on small machines",
    )
    seed: int = 0
    contracts: ContractSpec = Field(
        default_factory=ContractSpec, description="Data-contract thresholds (duplicates, blank text)"
    )
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="after")
    def _mixture_is_distribution(self):
        if any(w < 0 for w in self.mixture.values()):
            raise ValueError("mixture weights must be >= 0")
        total = sum(self.mixture.values())
        if abs(total - 1.0) > 1e-3:
            raise ValueError(f"mixture weights must sum to 1 (they sum to {total:.4f})")
        return self
