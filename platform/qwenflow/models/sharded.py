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
from safetensors import safe_open
from transformers import initialization as hf_init
from transformers.integrations.deepspeed import prevent_arange_dtype_change

from qwenflow import dist

CHUNK = 1 << 20  # values per generator stream


def _partitioning_init(ds_config: dict, tied_shape: tuple[int, ...] | None):
    """deepspeed.zero.Init that partitions without DeepSpeed's two whole-parameter costs, both pointless here because
    every value is written afterwards, partition by partition:
    - it broadcasts each parameter whole from rank 0 (the receiving ranks write, so the full tensor becomes resident);
    - with tied embeddings it partitions the LM head before the model ties it to the embedding (a second copy of the
      largest tensor, 0.14x of qwen2.5-0.5b per rank, held until the tie replaces it).
    Measured per rank over 2 processes on qwen2.5-0.5b: build peak 0.92x the model before, see
    benchmarks/sharded_memory.py for the figures after."""
    # lazy: imports mlflow, deepspeed, pandas (seconds to import)
    import deepspeed

    class Init(deepspeed.zero.Init):
        seen_tied = 0

        def _zero_init_param(self, param):
            self._convert_to_deepspeed_param(param)
            if tied_shape is not None and tuple(param.ds_shape) == tied_shape:
                Init.seen_tied += 1
                if Init.seen_tied == 2:  # the LM head (built after the embedding): tying replaces it, keep no storage
                    param.data = torch.empty(0, dtype=param.dtype)
                    param.ds_tensor = torch.empty(0, dtype=param.dtype)
                    param.ds_tensor.ds_numel = 0
                    return
            param.partition()

    return Init(config_dict_or_path=ds_config)


def empty(cls, config, ds_config: dict):
    """`cls(config)` partitioned across ranks at construction, weights uninitialised."""

    tied = (config.vocab_size, config.hidden_size) if getattr(config, "tie_word_embeddings", False) else None
    # prevent_arange_dtype_change: zero.Init would otherwise compute RoPE's inverse frequencies in a changed dtype
    # (transformers' own ZeRO-3 path guards it the same way)
    with hf_init.no_init_weights(), prevent_arange_dtype_change(), _partitioning_init(ds_config, tied):
        model = cls(config)
    model.tie_weights()  # as transformers' own ZeRO-3 path does after construction (tied embeddings: one tensor)
    if tied is not None and model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        raise RuntimeError(f"{cls.__name__}: the LM head was not tied to the embedding after construction")
    return model


def _local(p) -> tuple[int, int]:
    """(first flat index, count) of this rank's partition of a ZeRO-3 parameter."""
    size = p.ds_tensor.ds_numel
    start = size * dist.rank()
    return start, max(0, min(size, p.ds_numel - start))


def _seed(seed: int, name: str, chunk: int) -> int:
    return int(hashlib.sha256(f"{seed}/{name}/{chunk}".encode()).hexdigest()[:15], 16)


def fill_normal_(out: torch.Tensor, seed: int, name: str, numel: int, start: int, std: float = 1.0) -> torch.Tensor:
    """Write values [start, start + len(out)) of the parameter's flattened normal(0, std) init into `out`, one
    generator chunk at a time (no partition-sized temporaries)."""
    count = out.numel()
    pos = 0
    for k in range(start // CHUNK, (start + count - 1) // CHUNK + 1 if count else 0):
        n = min(CHUNK, numel - k * CHUNK)
        values = torch.randn(n, generator=torch.Generator().manual_seed(_seed(seed, name, k)))
        lo, hi = max(start, k * CHUNK) - k * CHUNK, min(start + count, k * CHUNK + n) - k * CHUNK
        out[pos : pos + hi - lo].copy_(values[lo:hi].mul_(std))
        pos += hi - lo
    return out


def _init_(out: torch.Tensor, name: str, seed: int, std: float, numel: int, start: int) -> None:
    """Qwen2's init of values [start, start + len(out)) of parameter `name`, written in place."""
    if name.endswith(".bias"):
        out.zero_()
    elif "norm" in name.rsplit(".", 2)[-2]:
        out.fill_(1.0)
    else:
        fill_normal_(out, seed, name, numel, start, std)


@torch.no_grad()
def init_by_name(model, seed: int, std: float) -> None:
    """Initialise every parameter from (seed, name) only: sharded ones partition by partition."""
    for name, p in model.named_parameters():
        if hasattr(p, "ds_id"):
            start, count = _local(p)
            if count:
                _init_(p.ds_tensor[:count], name, seed, std, p.ds_numel, start)
        else:
            _init_(p.data.view(-1), name, seed, std, p.numel(), 0)


def _read_(out: torch.Tensor, file: str, name: str, numel: int, start: int) -> None:
    """Copy values [start, start + len(out)) of tensor `name`, flattened, from a safetensors file into `out`, whole
    rows of about CHUNK values at a time (safetensors slices rows, not flat ranges). The file is opened per block so
    the pages a read maps are unmapped right after: no partition-sized temporary, mapped or allocated."""

    pos, end = start, start + out.numel()
    while pos < end:
        with safe_open(file, framework="pt") as h:
            part = h.get_slice(name)
            shape = part.get_shape()
            row = numel // shape[0] if len(shape) > 1 else 1
            r0 = pos // row
            r1 = min(-(-end // row), r0 + max(1, CHUNK // row))
            block = part[r0:r1].reshape(-1)
        lo, hi = pos - r0 * row, min(end, r1 * row) - r0 * row
        out[pos - start : pos - start + hi - lo].copy_(block[lo:hi])
        pos += hi - lo


@torch.no_grad()
def load_partitions(
    model, model_dir: Path, *, fresh: tuple[str, ...] = (), seed: int = 0, std: float = 0.02
) -> tuple[list[str], list[str]]:
    """Fill each rank's partitions from model_dir's safetensors; parameters whose name starts with one of `fresh`
    (e.g. a new reward head) are initialised instead. Returns (missing, unexpected) parameter names."""

    files = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as h:
            files.update(dict.fromkeys(h.keys(), str(f)))
    missing = []
    for name, p in model.named_parameters():
        start, count = _local(p)
        if name not in files:
            if name.startswith(fresh):
                if count:
                    _init_(p.ds_tensor[:count], name, seed, std, p.ds_numel, start)
            else:
                missing.append(name)
            continue
        if not count:
            continue
        _read_(p.ds_tensor[:count], files[name], name, p.ds_numel, start)
    known = set(model.state_dict().keys())
    unexpected = [k for k in files if k not in known]
    return missing, unexpected
