"""Shared pieces of the recipe schema: strict models and per-stage cluster resources."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Every recipe section rejects unknown keys and re-validates on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class Toleration(Strict):
    key: str = Field(description="Taint key to tolerate, e.g. nvidia.com/gpu")
    operator: str = Field("Exists", description="Exists or Equal")
    value: str | None = Field(None, description="Taint value when operator is Equal")
    effect: str = Field("NoSchedule", description="NoSchedule, PreferNoSchedule or NoExecute")


class Resources(Strict):
    """What one stage asks of the cluster; ignored by local runs."""

    gpu_type: str | None = Field(None, description="Accelerator type for kfp-kubernetes, e.g. nvidia.com/gpu")
    gpu_product: str | None = Field(None, description="Node label value of nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3")
    gpus: int = Field(0, ge=0, description="GPUs per node")
    cpu: str = Field("2", description="CPU request/limit per pod, Kubernetes quantity")
    memory: str = Field("8Gi", description="Memory request/limit per pod, Kubernetes quantity")
    nodes: int = Field(1, ge=1, description="Nodes; more than one submits a Kubeflow TrainJob (torchrun + DeepSpeed)")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Extra node selector labels")
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations for tainted (GPU, spot) nodes")
    timeout_s: int = Field(7 * 24 * 3600, gt=0, description="Kill the stage after this many seconds")
    retries: int = Field(0, ge=0, description="Retries for preemptible nodes (training resumes from its checkpoint)")


class StageBase(Strict):
    """Fields every training stage shares."""

    enabled: bool = Field(True, description="Run this stage in the pipeline")
    init_from: str | None = Field(None, description="Start from this HF model directory or models:/ URI instead of the previous stage's output")
    seed: int = Field(0, description="Random seed")
    resources: Resources = Field(default_factory=Resources)
