"""The one place models are found, built, loaded and saved.

- The loaders take a directory or an MLflow URI: `qwenflow.tracking.model_source.resolve` finds it (a download is
  checked against the sha256 recorded at registration; a mismatch is refused).
- `build_causal_lm` / `load_causal_lm` / `load_reward_model`: under ZeRO-3 the parameters are partitioned as they
  are created (DeepSpeed's zero.Init) and each rank initialises or reads only its own partitions (models/sharded.py),
  so no rank ever holds the whole model, nor one whole parameter; otherwise one process builds/loads it whole, in
  the dtype asked for, and weights that do not match the config or a truncated file are refused with one line.
- `save(model, out_dir, ...)`: every rank calls it; sharded parameters are gathered to rank 0 one tensor at a time,
  and only rank 0 writes (safetensors, tokenizer, recipe, lineage) into a temporary directory that is renamed into
  place, so a reader never sees half a model. No rank waits for another's disk or network work afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch.distributed.tensor import DTensor
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    Qwen2ForCausalLM,
    Qwen2MoeForCausalLM,
)

from qwenflow import dist
from qwenflow.artifacts import LINEAGE_FILE, RECIPE_FILE
from qwenflow.recipe import recipe_to_yaml
from qwenflow.tracking.model_source import resolve  # where a model comes from (a directory or an MLflow URI)

from . import sharded
from .builder import build_config, build_model


class ModelLoadError(ValueError):
    """A model that cannot be used: unreadable weights, or weights that do not fit the config."""


# ---------------------------------------------------------------- sharded construction


def deepspeed_init_config(distributed, *, bf16: bool) -> dict:
    """The part of a DeepSpeed config zero.Init reads (stage, precision, offload)."""
    world = dist.world_size()
    zero: dict[str, Any] = {"stage": 3}
    if distributed.cpu_offload:
        zero["offload_param"] = {"device": "cpu"}
    return {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "train_batch_size": world,
        "zero_optimization": zero,
        "bf16": {"enabled": bool(bf16)},
    }


def _init_deepspeed_dist() -> None:
    # lazy: imports mlflow, deepspeed, pandas (seconds to import)
    import deepspeed

    if not dist.initialized():
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo", verbose=False)


def _zero3(distributed) -> bool:
    return distributed is not None and distributed.strategy == "zero3" and dist.world_size() > 1


def build_causal_lm(spec, *, distributed=None, bf16: bool = False, seed: int | None = None, **token_ids):
    """A freshly initialised model of the recipe's architecture. Under ZeRO-3 it is partitioned as it is created and
    each rank initialises only its partitions (models/sharded.py), with values that depend on (seed, parameter name)
    only, so 1 and N processes start from the same weights; other strategies keep transformers' own init."""

    if distributed is None or distributed.strategy != "zero3":
        return build_model(spec, seed=seed, **token_ids)
    if dist.world_size() == 1:
        model = build_model(spec, seed=seed, **token_ids)
    else:
        _init_deepspeed_dist()
        cls = Qwen2ForCausalLM if spec.arch == "dense" else Qwen2MoeForCausalLM
        model = sharded.empty(cls, build_config(spec, **token_ids), deepspeed_init_config(distributed, bf16=bf16))
    sharded.init_by_name(model, seed or 0, spec.initializer_range)
    return model


# ---------------------------------------------------------------- loading


def _checked_from_pretrained(cls, path: Path, **kwargs):
    try:
        model, info = cls.from_pretrained(str(path), local_files_only=True, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(
            f"{path}: cannot read the model's weights ({type(e).__name__}: {first}); the "
            "safetensors file is truncated or not a model of this architecture"
        ) from None
    ignored = set(getattr(model, "_keys_to_ignore_on_load_missing", None) or ())
    missing = [k for k in info.get("missing_keys", []) if k not in ignored]
    unexpected = list(info.get("unexpected_keys", []))
    if kwargs.get("num_labels") is not None:  # a reward head on an LM: the score head is new, the LM head unused
        missing = [k for k in missing if not k.startswith("score.")]
        unexpected = [k for k in unexpected if not k.startswith("lm_head.")]
    if missing or unexpected or info.get("mismatched_keys"):
        raise ModelLoadError(
            f"{path}: the weights do not match the config's architecture (missing {missing[:3]}"
            f"{'...' if len(missing) > 3 else ''}, unexpected {unexpected[:3]}"
            f"{'...' if len(unexpected) > 3 else ''}, mismatched {list(info.get('mismatched_keys', []))[:3]});"
            " the directory mixes files from different models"
        )
    return model


def _load_zero3(auto_cls, path: Path, distributed, *, bf16: bool, config=None, num_labels: int | None = None, **kwargs):
    """A ZeRO-3-partitioned model read partition by partition from path's safetensors (models/sharded.py)."""

    if not list(path.glob("*.safetensors")):
        raise ModelLoadError(f"{path}: no *.safetensors weights; qwenflow loads safetensors only")
    config = config or AutoConfig.from_pretrained(str(path), local_files_only=True)
    if num_labels is not None:
        config.num_labels = num_labels
    if kwargs.get("attn_implementation"):
        config._attn_implementation = kwargs["attn_implementation"]
    _init_deepspeed_dist()
    cls = auto_cls._model_mapping[type(config)]
    model = sharded.empty(cls, config, deepspeed_init_config(distributed, bf16=bf16))
    try:
        missing, unexpected = sharded.load_partitions(
            model, path, fresh=("score.",) if num_labels else (), std=getattr(config, "initializer_range", 0.02)
        )
    except Exception as e:  # safetensors raises its own error types for truncated files
        raise ModelLoadError(
            f"{path}: cannot read the model's weights ({type(e).__name__}: {e}); the safetensors "
            "file is truncated or not a model of this architecture"
        ) from None
    if num_labels is not None:
        unexpected = [k for k in unexpected if not k.startswith("lm_head.")]
    if missing or unexpected:
        raise ModelLoadError(
            f"{path}: the weights do not match the config's architecture (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); the directory mixes files from different models"
        )
    return model


def load_causal_lm(
    source: str | Path,
    *,
    dtype: torch.dtype | str = torch.float32,
    config=None,
    distributed=None,
    bf16: bool = False,
    **kwargs,
):
    """A causal LM from a directory or registry URI (verified); under ZeRO-3 each rank reads only its partitions."""

    path = resolve(source)
    if _zero3(distributed):
        return _load_zero3(AutoModelForCausalLM, path, distributed, bf16=bf16, config=config, **kwargs)
    if config is not None:
        kwargs["config"] = config
    return _checked_from_pretrained(AutoModelForCausalLM, path, dtype=dtype, **kwargs)


def load_reward_model(
    source: str | Path, *, num_labels: int | None = None, distributed=None, bf16: bool = False, **kwargs
):
    """A sequence-classification (reward) model; num_labels=1 adds a fresh score head to a causal LM."""

    path = resolve(source)
    if _zero3(distributed):
        kwargs.pop("dtype", None)
        return _load_zero3(
            AutoModelForSequenceClassification, path, distributed, bf16=bf16, num_labels=num_labels, **kwargs
        )
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    return _checked_from_pretrained(AutoModelForSequenceClassification, path, **kwargs)


def load_config(source: str | Path):

    return AutoConfig.from_pretrained(str(resolve(source)), local_files_only=True)


# ---------------------------------------------------------------- saving


def _is_sharded(model) -> bool:

    return any(hasattr(p, "ds_id") or isinstance(p, DTensor) for p in model.parameters())


def full_state_dict(model) -> dict[str, torch.Tensor] | None:
    """The full state dict on rank 0 (None elsewhere). Every rank must call it: sharded tensors are gathered one at a
    time, so no rank holds more than one whole parameter beyond its shard (rank 0 collects them on the CPU)."""
    if dist.world_size() == 1 or not _is_sharded(model):
        return model.state_dict() if dist.is_main() else None

    out: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}  # tied weights (embeddings and LM head) are gathered once: id -> the first name
    main = dist.is_main()
    for name, t in model.state_dict(keep_vars=True).items():  # the saved keys: persistent buffers only
        if id(t) in seen:
            if main:
                out[name] = out[seen[id(t)]]
            continue
        full: torch.Tensor | None
        if hasattr(t, "ds_id"):
            # lazy: imports mlflow, deepspeed, pandas (seconds to import)
            import deepspeed

            with deepspeed.zero.GatheredParameters([t], modifier_rank=None):
                full = t.detach().cpu().clone() if main else None
        elif isinstance(t, DTensor):
            full = t.full_tensor().detach().cpu()
        else:
            full = t.detach().cpu()
        seen[id(t)] = name  # on every rank, so every rank skips the same tied tensors
        if main:
            assert full is not None  # only the other ranks skip the gathered copy
            out[name] = full
    return out if main else None


def save(
    model,
    out_dir: str | Path,
    *,
    tokenizer=None,
    recipe=None,
    lineage: dict | None = None,
    state_dict: dict | None = None,
    atomic: bool = True,
) -> Path:
    """Write a model directory (safetensors + tokenizer + recipe + lineage) from rank 0 only. atomic: written
    beside out_dir and renamed over it (out_dir is replaced); otherwise written into out_dir among its other files
    (the pre-training engine's output directory also holds its checkpoints and metrics)."""

    out_dir = Path(out_dir)
    if state_dict is None:
        state_dict = full_state_dict(model)
    if not dist.is_main():
        return out_dir
    unwrapped = getattr(model, "module", model)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp") if atomic else out_dir
    if atomic:
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    unwrapped.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    if recipe is not None:
        (tmp / RECIPE_FILE).write_text(recipe_to_yaml(recipe), encoding="utf-8")
    if lineage is not None:
        (tmp / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, default=str), encoding="utf-8")
    if atomic:
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    return out_dir
