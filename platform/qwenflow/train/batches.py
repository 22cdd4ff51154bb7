"""Deterministic, streamed batches from packed Parquet shards: which rows an optimizer step trains on depends only
on (seed, step), never on the number of processes, and a rank holds one window of rows at a time.

The packed rows are cut into micro-batch blocks and the blocks into windows (~WINDOW_TOKENS of consecutive rows,
read from the Parquet row groups that hold them). Each epoch visits the windows in a shuffled order and the blocks
inside a window in a shuffled order; the n-th block of that sequence is micro-batch `index` of step `step` with
n = step * blocks_per_step + index, and under torchrun rank r serves the indices r, r + world, ... So the global
batch of every step is the same rows with 1 or N processes (a 2-process run's first loss equals the 1-process
one), and memory stays at one window however large the packed set. Every rank reads the window it is in (the
price of world-independent batches: N processes read the data N times, one window at a time). With one window the
order is the plain per-epoch permutation of all blocks. The data position of a checkpoint is just its step.
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
        if n_blocks < self.blocks_per_step:
            raise ValueError(f"{packed_dir}: {self.train.num_rows} packed rows make {n_blocks} micro-batches of "
                             f"{micro_batch}, fewer than the {self.blocks_per_step} one optimizer step needs")
        self.first_block, self.n_blocks = 0, n_blocks
        self.window_blocks = max(1, min(self.n_blocks, window_tokens // (micro_batch * self.seq_len)))
        self.n_windows = -(-self.n_blocks // self.window_blocks)
        self._window: tuple[int, np.ndarray, np.ndarray | None] | None = None

    # ---- which block: epoch -> window order -> block order inside the window --------------------------------
    @lru_cache(maxsize=4)
    def _window_order(self, epoch: int) -> np.ndarray:
        if self.n_windows == 1:
            return np.zeros(1, dtype=np.int64)
        return np.random.default_rng([self.seed, epoch, 1 << 30]).permutation(self.n_windows)

    @lru_cache(maxsize=8)
    def _block_order(self, epoch: int, window: int) -> np.ndarray:
        size = min(self.window_blocks, self.n_blocks - window * self.window_blocks)
        key = [self.seed, epoch] if self.n_windows == 1 else [self.seed, epoch, window]
        return np.random.default_rng(key).permutation(size)

    def _block(self, j: int) -> tuple[int, int]:
        """(window, block inside it) of the j-th micro-batch of the whole run."""
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
        window, block = self._block(step * self.blocks_per_step + index)
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
