"""Load a model for serving with its per-deployment switches: YaRN rope scaling and the attention implementation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM

from qwenflow import longctx
from qwenflow.longctx.settings import ATTENTION
from qwenflow.longctx.yarn import apply_yarn, stored_yarn
from qwenflow.models import io
from qwenflow.tokenizer import load_tokenizer

LONGCTX_ATTENTION = tuple(ATTENTION)  # registered with transformers by qwenflow.longctx


@dataclass
class Loaded:
    model: object
    tokenizer: object
    context_limit: int  # prompt + completion tokens the deployment accepts
    yarn: dict | None


def register_attention(name: str) -> None:
    """The one seam to qwenflow.longctx: it registers its attention kernels with transformers under these names."""
    if name in LONGCTX_ATTENTION:
        longctx.register_attention(name)


def batch_limit(attention: str, requested: int) -> int:
    """Rows decoded together. The long-context kernels ignore left padding (checked: batched dca output differs
    from one-at-a-time), so they decode one sequence at a time until they take an attention mask."""
    return 1 if attention in LONGCTX_ATTENTION else requested


def load(
    model_dir: str | Path,
    *,
    yarn: bool = False,
    attention: str = "sdpa",
    device: str | None = None,
    dtype: str = "auto",
) -> Loaded:
    model_dir = Path(model_dir)
    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    scaling = stored_yarn(config) if yarn else None
    if yarn and scaling is None:
        raise ValueError(
            f"{model_dir}: yarn=true but the model carries no YaRN option (the long-context stage stores one in "
            "config.json); deploy with yarn=false"
        )
    if scaling:
        apply_yarn(config, scaling)
    register_attention(attention)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype == "auto":
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
    # the platform's one loader: refuses mismatched or truncated weights
    model = io.load_causal_lm(model_dir, config=config, dtype=dtype, attn_implementation=attention).to(device)
    tokenizer = load_tokenizer(model_dir)
    return Loaded(model.eval(), tokenizer, int(config.max_position_embeddings), scaling)


def check_model_dir(model_dir: str | Path) -> None:
    """Refuse, with one line, a directory that cannot be served: no config, not a causal LM transformers knows,
    weight files missing or truncated, weights that do not fit the architecture, no tokenizer. Reads only
    headers (a meta-device model gives the expected names), so it costs seconds even for a large model."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"{model_dir.name}: not a model directory (no config.json)")
    try:
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError, OSError) as e:
        raise ValueError(
            f"{model_dir.name}: config.json does not describe a causal LM this server can run "
            f"({str(e).splitlines()[0][:160]})"
        ) from None
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ValueError(f"{model_dir.name}: no *.safetensors weights (only safetensors are served)")
    found: set[str] = set()
    for f in files:
        try:
            with safe_open(str(f), "pt") as st:
                found |= set(st.keys())
        except Exception as e:
            raise ValueError(
                f"{model_dir.name}/{f.name}: unreadable weights ({str(e).splitlines()[0][:160]}); "
                "the file is truncated or corrupt"
            ) from None
    expected = set(model.state_dict())
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    missing, unexpected = sorted(expected - found - tied), sorted(found - expected)
    if missing or unexpected:
        raise ValueError(
            f"{model_dir.name}: the weights do not fit the {config.model_type} architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    try:
        load_tokenizer(model_dir)
    except (OSError, ValueError) as e:
        raise ValueError(f"{model_dir.name}: {str(e).splitlines()[0]}") from None
