"""Build transformers Qwen2 / Qwen2-MoE configs and models from a recipe (no model code of our own)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM

from qwenflow.recipe.model import ModelSpec

# Control-token ids of the Qwen2.5 vocabulary; small trained vocabularies put the same tokens first.
QWEN_EOS_ID = 151643


def build_config(
    spec: ModelSpec,
    *,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
):
    """A transformers config for the recipe's architecture."""
    common: dict[str, Any] = dict(
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings,
        rms_norm_eps=spec.rms_norm_eps,
        initializer_range=spec.initializer_range,
        tie_word_embeddings=spec.tie_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": float(spec.rope_theta)},
        use_sliding_window=False,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    if spec.arch == "dense":
        return Qwen2Config(intermediate_size=spec.intermediate_size, **common)
    moe = spec.moe
    assert moe is not None  # the recipe schema requires the moe section when arch is moe
    return Qwen2MoeConfig(
        intermediate_size=spec.intermediate_size,
        num_experts=moe.num_experts,
        num_experts_per_tok=moe.top_k,
        moe_intermediate_size=moe.moe_intermediate_size,
        shared_expert_intermediate_size=moe.shared_expert_intermediate_size,
        router_aux_loss_coef=moe.router_aux_loss_coef,
        norm_topk_prob=moe.norm_topk_prob,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        qkv_bias=True,
        output_router_logits=True,
        **common,
    )


def build_model(spec: ModelSpec, *, device: str | torch.device = "cpu", seed: int | None = None, **token_ids):
    """A freshly initialised model; device="meta" builds it without allocating memory."""
    config = build_config(spec, **token_ids)
    cls = Qwen2ForCausalLM if spec.arch == "dense" else Qwen2MoeForCausalLM
    if seed is not None:
        torch.manual_seed(seed)
    with torch.device(device):
        return cls(config)
