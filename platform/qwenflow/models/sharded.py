"""ZeRO-3 models built, initialised and loaded one partition at a time, so no rank ever holds a whole parameter.

DeepSpeed's zero.Init partitions each parameter as its module is constructed (with transformers' weight init
switched off, the full-size storage is never written, so it never becomes resident). Then every rank fills only
its own partition:
- `init_by_name`: Qwen2's initialisation (normal(0, std) matrices, zero biases, unit norm scales) drawn in fixed
  chunks of the flattened parameter, each from a generator seeded by (seed, name, chunk): a rank generates just the
  chunks its partition overlaps, and the values are the same with 1 or N processes (and unsharded);
- `load_partitions`: each rank reads its rows of every tensor from the safetensors files (safe_open slices).
Hand-written because transformers' ZeRO-3 paths gather each module whole on every rank to initialise or load it:
the 0.5B model's tied embedding alone is a quarter of the model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from qwenflow import dist

CHUNK = 1 << 20  # values per generator stream


def empty(cls, config, ds_config: dict):
    """`cls(config)` partitioned across ranks at construction, weights uninitialised."""
    import deepspeed
    from transformers import initialization as hf_init
    from transformers.integrations.deepspeed import prevent_arange_dtype_change

    # prevent_arange_dtype_change: zero.Init would otherwise compute RoPE's inverse frequencies in a changed dtype
    # (transformers' own ZeRO-3 path guards it the same way)
    with hf_init.no_init_weights(), prevent_arange_dtype_change(), deepspeed.zero.Init(config_dict_or_path=ds_config):
        model = cls(config)
    model.tie_weights()  # as transformers' own ZeRO-3 path does after construction (tied embeddings: one tensor)
    return model


def _local(p) -> tuple[int, int]:
    """(first flat index, count) of this rank's partition of a ZeRO-3 parameter."""
    size = p.ds_tensor.ds_numel
    start = size * dist.rank()
    return start, max(0, min(size, p.ds_numel - start))


def _seed(seed: int, name: str, chunk: int) -> int:
    return int(hashlib.sha256(f"{seed}/{name}/{chunk}".encode()).hexdigest()[:15], 16)


def normal_slice(seed: int, name: str, numel: int, start: int, count: int) -> torch.Tensor:
    """Values [start, start + count) of the parameter's flattened standard-normal init."""
    out = torch.empty(count)
    pos = 0
    for k in range(start // CHUNK, (start + count - 1) // CHUNK + 1 if count else 0):
        n = min(CHUNK, numel - k * CHUNK)
        values = torch.randn(n, generator=torch.Generator().manual_seed(_seed(seed, name, k)))
        lo, hi = max(start, k * CHUNK) - k * CHUNK, min(start + count, k * CHUNK + n) - k * CHUNK
        out[pos : pos + hi - lo] = values[lo:hi]
        pos += hi - lo
    return out


def _init_values(name: str, seed: int, std: float, numel: int, start: int, count: int) -> torch.Tensor:
    if name.endswith(".bias"):
        return torch.zeros(count)
    if "norm" in name.rsplit(".", 2)[-2]:
        return torch.ones(count)
    return normal_slice(seed, name, numel, start, count) * std


@torch.no_grad()
def init_by_name(model, seed: int, std: float) -> None:
    """Initialise every parameter from (seed, name) only: sharded ones partition by partition."""
    for name, p in model.named_parameters():
        if hasattr(p, "ds_id"):
            start, count = _local(p)
            if count:
                p.ds_tensor[:count].copy_(_init_values(name, seed, std, p.ds_numel, start, count))
        else:
            p.data.copy_(_init_values(name, seed, std, p.numel(), 0, p.numel()).view(p.shape).to(p.dtype))


@torch.no_grad()
def load_partitions(
    model, model_dir: Path, *, fresh: tuple[str, ...] = (), seed: int = 0, std: float = 0.02
) -> tuple[list[str], list[str]]:
    """Fill each rank's partitions from model_dir's safetensors; parameters whose name starts with one of `fresh`
    (e.g. a new reward head) are initialised instead. Returns (missing, unexpected) parameter names."""
    from safetensors import safe_open

    handles = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        h = safe_open(str(f), framework="pt")
        handles.update({k: h for k in h.keys()})
    missing = []
    for name, p in model.named_parameters():
        start, count = _local(p)
        if name not in handles:
            if name.startswith(fresh):
                if count:
                    p.ds_tensor[:count].copy_(_init_values(name, seed, std, p.ds_numel, start, count))
            else:
                missing.append(name)
            continue
        if not count:
            continue
        part = handles[name].get_slice(name)
        shape = part.get_shape()
        if len(shape) <= 1:
            values = part[start : start + count]
        else:  # read the rows that hold this partition, then cut it out of them
            row = p.ds_numel // shape[0]
            r0, r1 = start // row, -(-(start + count) // row)
            values = part[r0:r1].reshape(-1)[start - r0 * row : start - r0 * row + count]
        p.ds_tensor[:count].copy_(values.to(p.ds_tensor.dtype))
    known = set(model.state_dict().keys())
    unexpected = [k for k in handles if k not in known]
    return missing, unexpected
