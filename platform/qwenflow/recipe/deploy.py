"""Deployment section: registry name, serving options, Helm values."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Resources, Strict
from .ranges import Batch, Length


class DeploySpec(Strict):
    enabled: bool = True
    engine: Literal["bentoml", "vllm"] = Field(
        "bentoml",
        description="Serving runtime: bentoml (CPU or one GPU) or "
        "vllm (vLLM's OpenAI server, tensor parallel over resources.gpus)",
    )
    registered_model: str = Field("qwenflow-model", description="MLflow registered model name")
    yarn: bool = Field(False, description="Switch on the YaRN rope scaling stored in the model config")
    attention: Literal["sdpa", "eager", "dca", "sparse"] = Field(
        "sdpa", description="Attention implementation at inference"
    )
    max_batch_size: Batch = 16
    max_tokens_limit: Length = Field(4096, description="Largest max_tokens a request may ask for")
    replicas: int = Field(1, ge=1, le=1000)
    image: str = Field("ghcr.io/qwenflow/serving:0.1.0", description="Serving image (infra/ builds it)")
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="after")
    def _engine_uses_its_gpus(self):
        if self.engine == "bentoml" and self.resources.gpus > 1:
            raise ValueError(
                f"deploy.resources.gpus is {self.resources.gpus} but the bentoml engine serves on one GPU; "
                "set deploy.engine: vllm to shard the model over them (tensor parallel)"
            )
        if self.engine == "vllm" and self.resources.gpus < 1:
            raise ValueError("deploy.engine vllm needs deploy.resources.gpus >= 1")
        return self
