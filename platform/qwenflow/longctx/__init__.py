"""Training-free long-context inference for Qwen2-family models: YaRN, Dual Chunk Attention, sparse prefill.

    from qwenflow.longctx import load_model
    model = load_model("runs/model", "yarn+dca")      # none | yarn | yarn+dca | yarn+dca+sparse

See docs/long_context.md.
"""

from .settings import SETTINGS, configure, describe, load_model, register, register_attention
from .sparse import SparseConfig
from .yarn import enable_yarn, stored_yarn, trained_length, yarn_parameters

__all__ = [
    "SETTINGS",
    "SparseConfig",
    "configure",
    "describe",
    "enable_yarn",
    "load_model",
    "register",
    "register_attention",
    "stored_yarn",
    "trained_length",
    "yarn_parameters",
]
