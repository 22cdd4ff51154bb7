"""Data-contract thresholds (data.contracts): how much repetition and blank text a dataset may carry.

They come from the recipe, never from a dataset's own manifest, so a dataset cannot loosen its own checks.
Defaults are measured on the tiny recipe's prepared data: its SFT set repeats 20% of its conversations (20,000
two-digit +/- problems from a finite space), the upsampled code domain 65% of its documents (2.4x of 3x allowed),
and nothing else repeats.
"""

from __future__ import annotations

from pydantic import Field

from .base import Strict


class ContractSpec(Strict):
    corpus_max_duplicate_rate: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of a corpus domain's rows that may repeat an earlier row (whitespace and "
        "case ignored) beyond what upsampling that domain to the mixture explains (1 - 1/factor)",
    )
    sft_max_duplicate_rate: float = Field(0.3, ge=0, le=1, description="Share of SFT conversations that may repeat one")
    rl_max_duplicate_rate: float = Field(0.05, ge=0, le=1, description="Share of RL prompts that may repeat one")
    preferences_max_duplicate_rate: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of preference pairs that may repeat one (prompt, chosen and rejected all equal)",
    )
    max_blank_rate: float = Field(
        0.0, ge=0, le=1, description="Share of corpus texts that may be empty or whitespace only"
    )
