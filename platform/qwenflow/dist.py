"""Where this process stands in a distributed run (torchrun's environment), and the few collectives stages use.

Every stage runs the same code as one process or as one of N under torchrun; these helpers are how it tells which
(RANK, LOCAL_RANK, WORLD_SIZE are set by torchrun and by the Kubeflow Trainer / PyTorchJob pods).
"""

from __future__ import annotations

import os
import socket
from typing import Any


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Rank 0: the one process that logs to MLflow, writes model directories and hashes artifacts."""
    return rank() == 0


def single_process_env() -> None:
    """DeepSpeed wants a process group even for one process (without torchrun's variables it looks for MPI): give a
    lone process torchrun's environment for a world of one, on a free local port."""
    if "RANK" in os.environ:
        return

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def initialized() -> bool:
    # lazy: imports torch, numpy (seconds to import)
    import torch.distributed as torch_dist

    return torch_dist.is_available() and torch_dist.is_initialized()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank (one process: [obj])."""
    if world_size() == 1 or not initialized():
        return [obj]
    # lazy: imports torch, numpy (seconds to import)
    import torch.distributed as torch_dist

    out: list[Any] = [None] * world_size()
    torch_dist.all_gather_object(out, obj)
    return out


def shard(items: list, *, pad: bool = False) -> tuple[list, int]:
    """This rank's share of `items` (every world_size-th, from its rank) and how many of them are real.

    pad=True repeats the last item so every rank gets the same count: sharded models (ZeRO-3, FSDP) need every rank
    in every forward pass, so ranks must run the same number of batches; the padding is dropped from the results.
    """
    world, r = world_size(), rank()
    mine = items[r::world]
    real = len(mine)
    if pad and items:
        want = -(-len(items) // world)
        mine = mine + [items[-1]] * (want - len(mine))
    return mine, real


def unshard(per_rank: list[list], total: int) -> list:
    """Inverse of shard(): rank lists (padding already dropped) back into the original order."""
    out: list = [None] * total
    world = len(per_rank)
    for r, part in enumerate(per_rank):
        out[r::world] = part
    return out


def grad_accum(global_batch: int, micro_batch: int, world: int | None = None) -> int:
    """Accumulation steps that make micro x accum x world = global, or a clear error naming the three numbers."""
    world = world or world_size()
    if global_batch % (micro_batch * world):
        raise ValueError(
            f"global_batch_size {global_batch} is not a multiple of micro_batch_size {micro_batch} x "
            f"{world} processes; change the batch sizes or the number of processes"
        )
    return global_batch // (micro_batch * world)
