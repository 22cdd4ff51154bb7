"""The long-context settings a user picks per model load or deployment, and the loader that applies them.

Settings (the Qwen2.5 report's inference recipe, step by step):
  none              the checkpoint as trained (sdpa attention)
  yarn              + YaRN RoPE scaling (factor 4 over the trained length)
  yarn+dca          + Dual Chunk Attention (attn_implementation "dca")
  yarn+dca+sparse   + block-sparse prefill for long prompts (attn_implementation "sparse")
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AttentionInterface

from qwenflow.models import io

from .dca import block_size_for, dca_attention, default_dca
from .sparse import SparseConfig, sparse_attention
from .yarn import SCALING_FIELDS, apply_yarn, trained_length, yarn_parameters

SETTINGS = ("none", "yarn", "yarn+dca", "yarn+dca+sparse")
ABLATIONS = ("dca", "dca+sparse")  # DCA without YaRN (ChunkLlama's form), for comparison
ATTENTION = {"dca": dca_attention, "sparse": sparse_attention}


def register() -> None:
    """Make attn_implementation="dca" and "sparse" known to transformers. Safe to call any number of times."""
    for name, fn in ATTENTION.items():
        AttentionInterface.register(name, fn)


def register_attention(name: str) -> None:
    """Register one attention implementation by name (the serving loader's seam); unknown names are an error."""
    if name not in ATTENTION:
        raise ValueError(f"unknown long-context attention {name!r}; choose one of {', '.join(ATTENTION)}")
    AttentionInterface.register(name, ATTENTION[name])


def default_sparse(trained: int) -> SparseConfig:
    """Sparsity scaled to the model: 64-token blocks (32 for tiny models), sparse from twice the trained length."""
    return SparseConfig(block_size=block_size_for(trained), threshold=2 * trained)


def configure(
    config,
    setting: str,
    *,
    trained: int | None = None,
    yarn_factor: float = 4.0,
    local_size: int | None = None,
    sparse: SparseConfig | None = None,
):
    """Edit a Qwen2-family config in place for `setting`; returns it. `trained` overrides the trained length."""
    if setting not in SETTINGS + ABLATIONS:
        raise ValueError(f"unknown long-context setting {setting!r}; choose one of {', '.join(SETTINGS + ABLATIONS)}")
    register()
    trained = trained or trained_length(config)
    rope = {k: v for k, v in config.rope_parameters.items() if k not in SCALING_FIELDS}
    config.rope_parameters = {**rope, "rope_type": "default"}
    if "yarn" in setting:
        apply_yarn(config, yarn_parameters(rope, trained, yarn_factor))
    config.dual_chunk_attention_config = None
    config.sparse_attention_config = None
    attn = "sdpa"
    if "dca" in setting:
        config.dual_chunk_attention_config = default_dca(trained, block_size_for(trained))
        if local_size:
            config.dual_chunk_attention_config["local_size"] = local_size
        attn = "dca"
    if "sparse" in setting:
        config.sparse_attention_config = (sparse or default_sparse(trained)).to_dict()
        attn = "sparse"
    config._attn_implementation = attn
    return config


def load_model(
    path: str | Path,
    setting: str = "none",
    *,
    dtype: torch.dtype | str = "auto",
    device: str | torch.device = "cpu",
    **options,
):
    """Load a causal-LM directory with a long-context setting applied (options: see `configure`)."""
    path = io.resolve(path)
    config = configure(io.load_config(path), setting, **options)
    model = io.load_causal_lm(path, config=config, dtype=dtype, attn_implementation=config._attn_implementation)
    return model.to(device).eval()


def describe(model) -> dict:
    """The long-context settings a loaded model runs with (for logs and /health endpoints)."""
    c = model.config
    return json.loads(
        json.dumps(
            {
                "attn_implementation": c._attn_implementation,
                "rope": c.rope_parameters,
                "dca": c.dual_chunk_attention_config,
                "sparse": c.sparse_attention_config,
            }
        )
    )
