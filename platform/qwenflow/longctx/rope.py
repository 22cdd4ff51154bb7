"""Re-rotating RoPE'd queries and keys to other positions.

Qwen2Attention applies RoPE before it calls the attention function, so DCA receives q/k already rotated to their
absolute positions p. A RoPE rotation composes additively (R(a) R(b) = R(a + b)), so rotating by (t - p) moves a
vector to position t exactly, keeping YaRN's scaled frequencies and its attention factor (applied once, upstream).
This keeps DCA a plain attention function: no patched model code, works for any Qwen2-family checkpoint.
"""

from __future__ import annotations

import torch
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS


def inv_freq_for(module) -> torch.Tensor:
    """The rotary inverse frequencies the model used for this layer (YaRN-scaled when YaRN is on), cached."""
    cached = getattr(module, "_qwenflow_inv_freq", None)
    if cached is None:
        config = module.config
        rope = config.rope_parameters
        if rope.get("rope_type", "default") == "default":
            dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
            # float32, as transformers computes it, so re-rotation uses the model's own frequencies
            cached = 1.0 / (rope["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        elif rope["rope_type"] in ("yarn", "linear"):
            cached = ROPE_INIT_FUNCTIONS[rope["rope_type"]](config, "cpu")[0]
        else:
            raise ValueError(
                f"DCA supports default, linear and yarn RoPE, not {rope['rope_type']!r} "
                "(dynamic RoPE changes frequencies per length, which re-rotation cannot follow)"
            )
        cached = cached.double()
        module._qwenflow_inv_freq = cached
    return cached


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rerotate(x: torch.Tensor, delta: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., T, D), already RoPE'd, by `delta` (T,) further positions. Angles in float64: positions
    of tens of thousands times a frequency near 1 would lose ~1e-3 rad in float32."""
    angles = delta.to(torch.float64)[:, None] * inv_freq.to(delta.device)[None, :]
    emb = torch.cat((angles, angles), dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    return x * cos + rotate_half(x) * sin
