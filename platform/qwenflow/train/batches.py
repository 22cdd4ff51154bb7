"""Deterministic, streamed batches from packed Parquet shards: which rows a step trains on depends only on
(seed, step, rank, world size), and a rank reads only its own share of the rows, a window at a time.

A rank's share is a contiguous range of micro-batch blocks (torchrun's RANK / WORLD_SIZE pick it). Each epoch
visits the share's windows (~WINDOW_TOKENS of consecutive rows, read from the Parquet row groups that hold them) in
a shuffled order and the blocks inside a window in a shuffled order, so only one window is ever in memory, however
large the packed set. With one window and one process the order is the plain per-epoch permutation of all blocks.
That makes the data position of a checkpoint just its step.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

WINDOW_TOKENS = 1 << 23  # 8M tokens (32 MB of int32) in memory per rank


def _rank_world() -> tuple[int, int]:
    try:
        from qwenflow import dist

        return dist.rank(), dist.world_size()
    except ImportError:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


class ShardedRows:
    """Rows [start, stop) of a packed split's shards, read by row group on demand (only the groups asked for)."""

    def __init__(self, files: list[Path]):
        import pyarrow.parquet as pq

        # plain reads, not memory_map: mapped pages would count in the rank's resident memory until the file is closed
        self.files = [pq.ParquetFile(f) for f in files]
        groups = []  # (first row, rows, file index, row group index) over all shards in order
        row = 0
        for i, f in enumerate(self.files):
            for g in range(f.num_row_groups):
                n = f.metadata.row_group(g).num_rows
                groups.append((row, n, i, g))
                row += n
        self.groups = groups
        self.num_rows = row
        self.starts = np.array([g[0] for g in groups] + [row], dtype=np.int64)
        self.has_segments = bool(files) and "segment_len" in self.files[0].schema_arrow.names

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(int32 rows, segment_len per row or None) for rows [start, stop)."""
        import pyarrow as pa

        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        parts, segs = [], []
        for row, n, i, g in self.groups[first:]:
            if row >= stop:
                break
            table = self.files[i].read_row_group(g, columns=["input_ids"] + (["segment_len"] if self.has_segments else []))
            lo, hi = max(start - row, 0), min(stop - row, n)
            ids = table.column("input_ids").combine_chunks()
            flat = pa.compute.list_flatten(ids.slice(lo, hi - lo)).to_numpy()
            parts.append(flat.reshape(hi - lo, -1))
            if self.has_segments:
                segs.append(table.column("segment_len").to_numpy()[lo:hi])
        rows = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return rows, (np.concatenate(segs) if self.has_segments else None)


class PackedBatches:
    """Micro-batches of one packed dataset, in blocks of `micro_batch` rows reshuffled each epoch."""

    def __init__(self, packed_dir: Path, *, micro_batch: int, global_batch: int, seed: int,
                 rank: int | None = None, world: int | None = None, window_tokens: int = WINDOW_TOKENS):
        import pyarrow.compute  # noqa: F401 - pa.compute in ShardedRows.read

        from qwenflow.artifacts import read_manifest
        from qwenflow.data.pack import shard_files

        packed_dir = Path(packed_dir)
        env_rank, env_world = _rank_world()
        self.rank = env_rank if rank is None else rank
        self.world = env_world if world is None else world
        self.train = ShardedRows(shard_files(packed_dir, "train"))
        self.val_files = shard_files(packed_dir, "val")
        self.seq_len = int(read_manifest(packed_dir)["seq_len"])
        self.micro, self.blocks_per_step, self.seed = micro_batch, global_batch // micro_batch, seed
        n_blocks = self.train.num_rows // micro_batch
        if n_blocks < self.world:
            raise ValueError(f"{packed_dir}: {self.train.num_rows} packed rows make {n_blocks} micro-batches of "
                             f"{micro_batch}, fewer than the {self.world} training processes")
        # this rank's contiguous share of the blocks, cut into windows of about window_tokens
        self.first_block = n_blocks * self.rank // self.world
        self.n_blocks = n_blocks * (self.rank + 1) // self.world - self.first_block
        self.window_blocks = max(1, min(self.n_blocks, window_tokens // (micro_batch * self.seq_len)))
        self.n_windows = -(-self.n_blocks // self.window_blocks)
        self._window: tuple[int, np.ndarray, np.ndarray | None] | None = None

    # ---- which block: epoch -> window order -> block order inside the window --------------------------------
    def _stream(self, *extra: int) -> list[int]:
        return [self.seed, *extra] + ([self.rank, self.world] if self.world > 1 else [])

    @lru_cache(maxsize=4)
    def _window_order(self, epoch: int) -> np.ndarray:
        if self.n_windows == 1:
            return np.zeros(1, dtype=np.int64)
        return np.random.default_rng(self._stream(epoch, 1 << 30)).permutation(self.n_windows)

    @lru_cache(maxsize=8)
    def _block_order(self, epoch: int, window: int) -> np.ndarray:
        size = min(self.window_blocks, self.n_blocks - window * self.window_blocks)
        key = self._stream(epoch) if self.n_windows == 1 else self._stream(epoch, window)
        return np.random.default_rng(key).permutation(size)

    def _block(self, j: int) -> tuple[int, int]:
        """(window, block inside it) of this rank's j-th micro-batch."""
        epoch, p = divmod(j, self.n_blocks)
        order = self._window_order(epoch)
        sizes = np.minimum(self.window_blocks, self.n_blocks - order * self.window_blocks)
        ends = np.cumsum(sizes)
        k = int(np.searchsorted(ends, p, side="right"))
        window = int(order[k])
        return window, int(self._block_order(epoch, window)[p - (ends[k] - sizes[k])])

    def _load(self, window: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self._window is None or self._window[0] != window:
            self._window = None  # let the old window go before reading the next
            first = (self.first_block + window * self.window_blocks) * self.micro
            size = min(self.window_blocks, self.n_blocks - window * self.window_blocks)
            rows, segs = self.train.read(first, first + size * self.micro)
            self._window = (window, rows, segs)
        return self._window[1], self._window[2]

    def micro_batch(self, step: int, index: int) -> torch.Tensor:
        """The `index`-th micro-batch of optimizer step `step` (index = accumulation step * world + rank); this
        process serves its own rank's indices."""
        if index % self.world != self.rank:
            raise ValueError(f"micro-batch index {index} belongs to rank {index % self.world}, not {self.rank}")
        per_rank = max(1, self.blocks_per_step // self.world)
        window, block = self._block(step * per_rank + index // self.world)
        rows, segs = self._load(window)
        part = torch.from_numpy(rows[block * self.micro:(block + 1) * self.micro].astype(np.int64))
        seg = self.seq_len if segs is None else int(segs[block * self.micro])
        return part.reshape(-1, seg)  # a short-sequence row becomes several independent sequences

    def tokens_per_step(self) -> int:
        return self.blocks_per_step * self.micro * self.seq_len

    def val_batches(self, max_tokens: int = 65536):
        """The first rows of the held-out split (the same on every rank), read only as far as needed."""
        val = ShardedRows(self.val_files)
        n = min(val.num_rows, max(self.micro, max_tokens // self.seq_len))
        rows, _ = val.read(0, n)
        rows = torch.from_numpy(rows.astype(np.int64))
        for i in range(0, n, self.micro):
            yield rows[i:i + self.micro]
