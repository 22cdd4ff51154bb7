"""Deterministic batches from packed Parquet: which rows a step trains on depends only on (seed, step).

That makes the data position of a checkpoint just its step, and gives every process count the same global batch.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch


def read_packed(path: Path) -> tuple[torch.Tensor, np.ndarray | None]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    n = table.num_rows
    flat = table.column("input_ids").combine_chunks().flatten().to_numpy()
    rows = torch.from_numpy(flat.astype(np.int64).reshape(n, -1))
    seg = table.column("segment_len").to_numpy() if "segment_len" in table.column_names else None
    return rows, seg


class PackedBatches:
    """Micro-batches of one packed dataset, in blocks of `micro_batch` rows reshuffled each epoch."""

    def __init__(self, packed_dir: Path, *, micro_batch: int, global_batch: int, seed: int):
        self.rows, self.segments = read_packed(Path(packed_dir) / "train.parquet")
        self.val_rows, _ = read_packed(Path(packed_dir) / "val.parquet")
        self.seq_len = self.rows.shape[1]
        self.micro, self.blocks_per_step, self.seed = micro_batch, global_batch // micro_batch, seed
        self.n_blocks = len(self.rows) // micro_batch
        if self.n_blocks == 0:
            raise ValueError(f"{packed_dir}: {len(self.rows)} packed rows, fewer than one micro-batch of {micro_batch}")

    @lru_cache(maxsize=4)
    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_blocks)

    def micro_batch(self, step: int, index: int) -> torch.Tensor:
        """The `index`-th micro-batch of optimizer step `step` (index = accumulation step * world + rank)."""
        k = step * self.blocks_per_step + index
        block = self._order(k // self.n_blocks)[k % self.n_blocks]
        rows = self.rows[block * self.micro:(block + 1) * self.micro]
        seg = self.seq_len if self.segments is None else int(self.segments[block * self.micro])
        return rows.reshape(-1, seg)  # a short-sequence row becomes several independent sequences

    def tokens_per_step(self) -> int:
        return self.blocks_per_step * self.micro * self.seq_len

    def val_batches(self, max_tokens: int = 65536):
        n = max(self.micro, min(len(self.val_rows), max_tokens // self.seq_len))
        for i in range(0, n, self.micro):
            yield self.val_rows[i:i + self.micro]
