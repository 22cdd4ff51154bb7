"""Shared pieces of the recipe schema: strict models and per-stage cluster resources."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Every recipe section rejects unknown keys and re-validates on assignment."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False
    )  # NaN/inf are never a valid recipe number


class Toleration(Strict):
    key: str = Field(description="Taint key to tolerate, e.g. nvidia.com/gpu")
    operator: str = Field("Exists", description="Exists or Equal")
    value: str | None = Field(None, description="Taint value when operator is Equal")
    effect: str = Field("NoSchedule", description="NoSchedule, PreferNoSchedule or NoExecute")


class Resources(Strict):
    """What one stage asks of the cluster; ignored by local runs."""

    gpu_type: str | None = Field(None, description="Accelerator type for kfp-kubernetes, e.g. nvidia.com/gpu")
    gpu_product: str | None = Field(
        None, description="Node label value of nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3"
    )
    gpus: int = Field(0, ge=0, le=64, description="GPUs per node")
    cpu: str = Field("2", description="CPU request/limit per pod, Kubernetes quantity")
    memory: str = Field("8Gi", description="Memory request/limit per pod, Kubernetes quantity")
    nodes: int = Field(
        1,
        ge=1,
        le=10_000,
        description="Nodes; more than one submits a Kubeflow Trainer TrainJob (torchrun on every node)",
    )
    launcher: Literal["trainjob", "pytorchjob"] = Field(
        "trainjob",
        description="Multi-node engine: Kubeflow Trainer v2 TrainJob, or the v1 Training Operator's PyTorchJob "
        "for clusters still on it",
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="Extra node selector labels")
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations for tainted (GPU, spot) nodes")
    gpu_memory_gib: float | None = Field(
        None,
        gt=0,
        le=4096,
        description="Memory of one GPU in GiB for the memory "
        "plan; default: looked up from gpu_product (qwenflow.plan.accelerators)",
    )
    timeout_s: int = Field(
        7 * 24 * 3600,
        gt=0,
        le=90 * 24 * 3600,
        description="Kill the stage after this many seconds; "
        "unset, bookkeeping steps get minutes to hours by kind (qwenflow.orchestration.policy)",
    )
    retries: int = Field(
        0,
        ge=0,
        le=100,
        description="Retries for preemptible nodes; honoured by training stages only "
        "(they resume from their checkpoint; other steps would fail the same way again)",
    )

    def processes(self) -> int:
        """Training processes the stage runs as: one per GPU on every node (one per node without GPUs)."""
        return self.nodes * max(self.gpus, 1)


class DistributedSpec(Strict):
    """How a training stage spreads its model over the processes `resources` gives it."""

    strategy: Literal["ddp", "zero2", "zero3", "fsdp2"] = Field(
        "ddp",
        description="ddp: a full replica per process; zero2: optimizer state and gradients sharded (DeepSpeed); "
        "zero3: parameters sharded too (DeepSpeed); "
        "fsdp2: parameters, gradients and optimizer state sharded (PyTorch FSDP2)",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass (less memory, ~30% more compute)"
    )
    cpu_offload: bool = Field(False, description="Keep optimizer state (zero2/zero3/fsdp2) in CPU memory")


class StageBase(Strict):
    """Fields every training stage shares."""

    enabled: bool = Field(True, description="Run this stage in the pipeline")
    init_from: str | None = Field(
        None, description="Start from this HF model directory or models:/ URI instead of the previous stage's output"
    )
    seed: int = Field(0, description="Random seed")
    resources: Resources = Field(default_factory=Resources)
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)

    @model_validator(mode="after")
    def _batch_splits_over_processes(self):
        """Global batch = micro batch x accumulation x world size: the micro batch times the processes `resources`
        gives must divide it (the one batch-divisibility check of every stage; `auto` is checked once resolved)."""
        glob, micro = getattr(self, "global_batch_size", None), getattr(self, "micro_batch_size", None)
        world = self.resources.processes()
        if isinstance(glob, int) and micro and glob % (micro * world):
            if world == 1:
                raise ValueError(f"micro_batch_size ({micro}) must divide global_batch_size ({glob})")
            raise ValueError(
                f"global_batch_size ({glob}) must be a multiple of micro_batch_size ({micro}) x "
                f"{world} processes (resources: {self.resources.nodes} node(s) x {self.resources.gpus} "
                "GPU(s)); change the batch sizes or the resources"
            )
        return self
