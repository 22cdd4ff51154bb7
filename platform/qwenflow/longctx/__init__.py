"""Training-free long-context inference for Qwen2-family models: YaRN, Dual Chunk Attention, sparse prefill.

    from qwenflow.longctx import load_model
    model = load_model("runs/model", "yarn+dca")      # none | yarn | yarn+dca | yarn+dca+sparse

See docs/long_context.md.
"""

from .settings import SETTINGS, configure, describe, load_model, register, register_attention, trained_length
from .sparse import SparseConfig

__all__ = [
    "SETTINGS",
    "SparseConfig",
    "configure",
    "describe",
    "load_model",
    "register",
    "register_attention",
    "trained_length",
]
