"""YaRN rope scaling: the one place that builds its rope parameters and the one that reads them from a model.

The long-context stage stores YaRN in config.json under `qwenflow_yarn` (factor x the trained length) and leaves it
off; transformers ignores the extra key. A deployment with `yarn: true` (serving), `enable_yarn(model_dir)` or a
long-context setting with YaRN copies it into `rope_parameters`. Qwen2.5's own model cards do the same by hand:
`rope_scaling: {type: yarn, factor: 4, original_max_position_embeddings: 32768}`.
"""

from __future__ import annotations

import json
from pathlib import Path

YARN_KEY = "qwenflow_yarn"
# rope_parameters entries that belong to a scaling type, dropped when the type changes
SCALING_FIELDS = ("factor", "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow")


def trained_length(config) -> int:
    """The length the checkpoint was trained at: YaRN's original length when present, else max_position_embeddings."""
    rope = getattr(config, "rope_parameters", None) or {}
    return int(rope.get("original_max_position_embeddings") or config.max_position_embeddings)


def yarn_parameters(rope: dict, trained: int, factor: float) -> dict:
    """`rope` (transformers rope_parameters; rope_theta kept) with YaRN over `factor` x `trained` tokens."""
    if factor <= 1:
        raise ValueError(f"YaRN factor must be > 1, got {factor}")
    base = {k: v for k, v in rope.items() if k not in SCALING_FIELDS}
    return {**base, "rope_type": "yarn", "factor": float(factor), "original_max_position_embeddings": int(trained)}


def stored_yarn(config) -> dict | None:
    """The YaRN parameters a model carries: on already (rope_parameters) or stored by the long-context stage."""
    rope = dict(getattr(config, "rope_parameters", None) or {})
    if rope.get("rope_type") == "yarn":
        return rope
    stored = getattr(config, YARN_KEY, None)
    return dict(stored) if stored else None


def yarn_context(yarn: dict) -> int:
    """The context YaRN serves: factor x the trained length."""
    return int(float(yarn["factor"]) * int(yarn["original_max_position_embeddings"]))


def apply_yarn(config, yarn: dict):
    """Switch `yarn` on in a transformers config (in place; returns it)."""
    config.rope_parameters = dict(yarn)
    config.max_position_embeddings = yarn_context(yarn)
    return config


def enable_yarn(model_dir: str | Path) -> dict:
    """Switch the stored YaRN option on in model_dir/config.json for tools that read the file, not this package."""
    path = Path(model_dir) / "config.json"
    cfg = json.loads(path.read_text())
    if YARN_KEY not in cfg:
        raise ValueError(f"{path}: no {YARN_KEY} entry; only models from the long-context stage carry one")
    yarn = cfg[YARN_KEY]
    cfg["rope_parameters"] = dict(yarn)
    cfg["max_position_embeddings"] = yarn_context(yarn)
    path.write_text(json.dumps(cfg, indent=2))
    return cfg
