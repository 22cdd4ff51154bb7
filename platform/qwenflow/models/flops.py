"""Exact parameter counts and training FLOPs per token, computed from a meta-device model."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qwenflow.recipe.model import ModelSpec

from .builder import build_model


@dataclass(frozen=True)
class ModelSize:
    total_params: int  # unique parameters (tied embeddings counted once)
    embedding_params: int  # input embedding table
    active_params: int  # parameters touched per token (MoE: top-k routed + shared experts)
    flops_per_token: float  # training FLOPs per token at the given sequence length (forward + backward)

    def summary(self) -> dict:
        return {
            "total_params": self.total_params,
            "embedding_params": self.embedding_params,
            "active_params": self.active_params,
            "flops_per_token": self.flops_per_token,
        }


def _expert_params_per_layer(model) -> tuple[int, int]:
    """(all routed-expert params, params of one routed expert) in one MoE layer."""
    for m in model.modules():
        gate_up = getattr(m, "gate_up_proj", None)
        if isinstance(gate_up, torch.nn.Parameter) and gate_up.dim() == 3:  # fused experts [E, 2I, H]
            total = gate_up.numel() + m.down_proj.numel()
            return total, total // gate_up.shape[0]
    return 0, 0


def model_size(spec: ModelSpec, seq_len: int = 4096) -> ModelSize:
    model = build_model(spec, device="meta")
    total = sum(p.numel() for p in model.parameters())  # parameters() de-duplicates tied weights
    emb = model.get_input_embeddings().weight.numel()
    active = total
    if spec.arch == "moe":
        all_experts, one_expert = _expert_params_per_layer(model)
        assert spec.moe is not None  # the recipe schema requires the moe section when arch is moe
        active = total - spec.num_layers * (all_experts - spec.moe.top_k * one_expert)
    # Matmul FLOPs: 6 per parameter per token for every weight used as a matmul (the input embedding is a lookup,
    # the LM head is a matmul even when tied), plus attention scores and values: 12 * layers * seq * hidden.
    matmul_params = active - emb + spec.vocab_size * spec.hidden_size
    # Router / norm vectors are negligible but exact counting keeps them; they are not matmuls on tokens.
    flops = 6 * matmul_params + 12 * spec.num_layers * seq_len * spec.hidden_size
    return ModelSize(total, emb, active, float(flops))


def training_memory_gb(spec: ModelSpec, gpus: int = 8, zero_stage: int = 3, bytes_master: int = 12) -> dict:
    """Memory per GPU for weights + grads + AdamW state (mixed precision), ZeRO partitioning applied; no activations."""
    n = model_size(spec).total_params
    weights: float
    grads: float
    optim: float
    weights, grads, optim = 2 * n, 2 * n, bytes_master * n  # bf16 weights, bf16 grads, fp32 master + m + v
    if zero_stage >= 1:
        optim /= gpus
    if zero_stage >= 2:
        grads /= gpus
    if zero_stage >= 3:
        weights /= gpus
    gb = 1024**3
    return {
        "weights_gb": weights / gb,
        "grads_gb": grads / gb,
        "optimizer_gb": optim / gb,
        "total_gb": (weights + grads + optim) / gb,
    }
