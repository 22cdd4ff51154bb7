"""Model family: exact parameter counts against the published sizes, built on the meta device."""

from __future__ import annotations

import pytest
import torch

from qwenflow.models import build_model, model_size
from qwenflow.recipe import load_recipe

PUBLISHED = {
    "qwen2.5-0.5b": 0.49e9,
    "qwen2.5-1.5b": 1.54e9,
    "qwen2.5-3b": 3.09e9,
    "qwen2.5-7b": 7.61e9,
    "qwen2.5-14b": 14.7e9,
    "qwen2.5-32b": 32.5e9,
    "qwen2.5-72b": 72.7e9,
}


@pytest.mark.parametrize("name, published", PUBLISHED.items())
def test_dense_param_counts_match_published(name, published):
    size = model_size(load_recipe(name).model)
    assert abs(size.total_params - published) / published < 0.01, size.total_params
    assert size.active_params == size.total_params


def test_moe_total_and_active_match_qwen15_moe():
    size = model_size(load_recipe("qwen2.5-moe-a2.7b").model)
    assert abs(size.total_params - 14.3e9) / 14.3e9 < 0.01
    assert abs(size.active_params - 2.7e9) / 2.7e9 < 0.01
    assert size.flops_per_token < 6 * size.total_params / 3  # MoE FLOPs follow active, not total, parameters


def test_flops_per_token_is_six_n_plus_attention():
    r = load_recipe("qwen2.5-7b")
    s = model_size(r.model, seq_len=4096)
    m = r.model
    expected = (
        6 * (s.total_params - s.embedding_params + m.vocab_size * m.hidden_size)
        + 12 * m.num_layers * 4096 * m.hidden_size
    )
    assert s.flops_per_token == expected
    assert 6 * s.total_params < s.flops_per_token < 8 * s.total_params


def test_meta_device_spends_no_memory_and_tiny_model_runs():
    big = build_model(load_recipe("qwen2.5-72b").model, device="meta")
    assert next(big.parameters()).device.type == "meta"
    tiny = build_model(load_recipe("tiny").model, seed=0)
    out = tiny(torch.randint(0, 4096, (2, 16)), labels=torch.randint(0, 4096, (2, 16)))
    assert out.logits.shape == (2, 16, 4096) and torch.isfinite(out.loss)
    assert abs(out.loss.item() - torch.log(torch.tensor(4096.0)).item()) < 0.5  # ~uniform at init


def test_built_config_keeps_qwen25_architecture():
    m = build_model(load_recipe("qwen2.5-7b").model, device="meta")
    c = m.config
    assert c.rope_parameters["rope_theta"] == 10000 and c.rms_norm_eps == 1e-6 and not c.tie_word_embeddings
    assert m.model.layers[0].self_attn.q_proj.bias is not None  # QKV bias
    assert c.num_key_value_heads == 4 and c.hidden_act == "silu"


def test_moe_model_returns_router_aux_loss():
    r = load_recipe(
        "qwen2.5-moe-a2.7b",
        [
            "model.hidden_size=64",
            "model.num_layers=2",
            "model.num_heads=4",
            "model.num_kv_heads=4",
            "model.intermediate_size=128",
            "model.vocab_size=512",
            "model.moe.num_experts=8",
            "model.moe.top_k=2",
            "model.moe.moe_intermediate_size=32",
            "model.moe.shared_expert_intermediate_size=64",
            "tokenizer.kind=bpe",
            "tokenizer.vocab_size=512",
        ],
    )
    model = build_model(r.model, seed=0)
    out = model(torch.randint(0, 512, (2, 8)), labels=torch.randint(0, 512, (2, 8)))
    assert out.aux_loss is not None and torch.isfinite(out.aux_loss)
