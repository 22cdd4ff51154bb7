"""Deterministic, streamed batches from packed Parquet shards: which rows an optimizer step trains on depends only
on (seed, step), never on the number of processes, and a rank reads only its own share of the rows, one window at a
time.

The packed rows are cut into micro-batch blocks, and the blocks into G = global_batch / micro_batch contiguous
lanes: micro-batch `index` of every step comes from lane `index`. Under torchrun, rank r serves the indices
r, r + world, ... (the engine's index = accumulation step * world + rank), so it reads only the lanes r, r + world,
...: 1/world of the rows. Inside a lane, each epoch visits its windows (~WINDOW_TOKENS / G of consecutive rows, read
from the Parquet row groups that hold them) in a shuffled order and the blocks inside a window in a shuffled order;
a rank holds one window per lane it serves (at most WINDOW_TOKENS / world tokens), however large the packed set.
So a step's global batch is the same rows with 1 or N processes (an N-process run's first loss equals the
1-process one), every step draws one block from each stretch of the corpus, and with G = 1 and one window the order
is the plain per-epoch permutation of all blocks. The data position of a checkpoint is just its step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from qwenflow import dist
from qwenflow.artifacts import read_manifest
from qwenflow.data.pack import shard_files

WINDOW_TOKENS = 1 << 23  # 8M tokens (32 MB of int32) in memory per rank


def _rank_world() -> tuple[int, int]:
    return dist.rank(), dist.world_size()


class ShardedRows:
    """Rows [start, stop) of a packed split's shards, read by row group on demand (only the groups asked for)."""

    def __init__(self, files: list[Path]):
        # lazy: imports pyarrow (388 ms)
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
        # lazy: imports pyarrow (349 ms)
        import pyarrow as pa

        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        parts, segs = [], []
        for row, n, i, g in self.groups[first:]:
            if row >= stop:
                break
            table = self.files[i].read_row_group(
                g, columns=["input_ids"] + (["segment_len"] if self.has_segments else [])
            )
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

    def __init__(
        self,
        packed_dir: Path,
        *,
        micro_batch: int,
        global_batch: int,
        seed: int,
        rank: int | None = None,
        world: int | None = None,
        window_tokens: int = WINDOW_TOKENS,
    ):
        import pyarrow.compute  # noqa: F401 - pa.compute in ShardedRows.read

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
            raise ValueError(
                f"{packed_dir}: {self.train.num_rows} packed rows make {n_blocks} micro-batches of "
                f"{micro_batch}, fewer than the {self.blocks_per_step} one optimizer step needs"
            )
        self.n_blocks = n_blocks
        lanes = self.blocks_per_step
        # lane i: blocks [bounds[i], bounds[i + 1]); its windows of window_blocks (the same for every world size)
        self.bounds = [n_blocks * i // lanes for i in range(lanes + 1)]
        self.window_blocks = max(1, min(n_blocks // lanes, window_tokens // (micro_batch * self.seq_len * lanes)))
        self._windows: dict[int, tuple[int, np.ndarray, np.ndarray | None]] = {}  # lane -> its current window
        # per-instance caches: a cache on the class would keep every instance (and its open shards) alive
        self._window_order = lru_cache(maxsize=256)(self._window_order_of)
        self._block_order = lru_cache(maxsize=256)(self._block_order_of)

    def _lane_size(self, lane: int) -> int:
        return self.bounds[lane + 1] - self.bounds[lane]

    @property
    def n_windows(self) -> int:
        """Windows of the largest lane."""
        return -(-max(self._lane_size(i) for i in range(self.blocks_per_step)) // self.window_blocks)

    # ---- which block: lane -> epoch -> window order -> block order inside the window -------------------------
    def _key(self, lane: int, *extra: int) -> list[int]:
        return [self.seed, *extra] if self.blocks_per_step == 1 else [self.seed, lane, *extra]

    def _window_order_of(self, lane: int, epoch: int) -> np.ndarray:
        n = -(-self._lane_size(lane) // self.window_blocks)
        if n == 1:
            return np.zeros(1, dtype=np.int64)
        return np.random.default_rng(self._key(lane, epoch, 1 << 30)).permutation(n)

    def _block_order_of(self, lane: int, epoch: int, window: int) -> np.ndarray:
        size = min(self.window_blocks, self._lane_size(lane) - window * self.window_blocks)
        single = self._lane_size(lane) <= self.window_blocks
        key = self._key(lane, epoch) if single else self._key(lane, epoch, window)
        return np.random.default_rng(key).permutation(size)

    def _block(self, lane: int, j: int) -> tuple[int, int]:
        """(window, block inside it) of the lane's j-th micro-batch."""
        epoch, p = divmod(j, self._lane_size(lane))
        order = self._window_order(lane, epoch)
        sizes = np.minimum(self.window_blocks, self._lane_size(lane) - order * self.window_blocks)
        ends = np.cumsum(sizes)
        k = int(np.searchsorted(ends, p, side="right"))
        window = int(order[k])
        return window, int(self._block_order(lane, epoch, window)[p - (ends[k] - sizes[k])])

    def _load(self, lane: int, window: int) -> tuple[np.ndarray, np.ndarray | None]:
        held = self._windows.get(lane)
        if held is None or held[0] != window:
            self._windows.pop(lane, None)  # let the old window go before reading the next
            first = (self.bounds[lane] + window * self.window_blocks) * self.micro
            size = min(self.window_blocks, self._lane_size(lane) - window * self.window_blocks)
            rows, segs = self.train.read(first, first + size * self.micro)
            self._windows[lane] = (window, rows, segs)
        return self._windows[lane][1], self._windows[lane][2]

    def micro_batch(self, step: int, index: int) -> torch.Tensor:
        """The `index`-th micro-batch of optimizer step `step` (index = accumulation step * world + rank); this
        process serves its own rank's indices."""
        if index % self.world != self.rank:
            raise ValueError(f"micro-batch index {index} belongs to rank {index % self.world}, not {self.rank}")
        if not 0 <= index < self.blocks_per_step:
            raise ValueError(f"micro-batch index {index} outside the {self.blocks_per_step} of a step")
        window, block = self._block(index, step)
        rows, segs = self._load(index, window)
        part = torch.from_numpy(rows[block * self.micro : (block + 1) * self.micro].astype(np.int64))
        seg = self.seq_len if segs is None else int(segs[block * self.micro])
        return part.reshape(-1, seg)  # a short-sequence row becomes several independent sequences

    def tokens_per_step(self) -> int:
        return self.blocks_per_step * self.micro * self.seq_len

    def val_batches(self, max_tokens: int = 65536):
        """The first rows of the held-out split (the same on every rank), read only as far as needed."""
        val = ShardedRows(self.val_files)
        n = min(val.num_rows, max(self.micro, max_tokens // self.seq_len))
        arr, _ = val.read(0, n)
        rows = torch.from_numpy(arr.astype(np.int64))
        for i in range(0, n, self.micro):
            yield rows[i : i + self.micro]
