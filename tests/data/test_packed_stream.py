"""The packed training loader streams: a rank reads only its share of the rows, a window at a time, so its resident
memory stays flat over a packed set 20x the tiny recipe's; the ranks split every step's global batch between them,
and that batch is the same rows whatever the number of processes; per-shard contracts aggregate to the whole and
catch a broken shard."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from qwenflow.data import pack
from qwenflow.data.shard_contracts import validate_sharded
from qwenflow.train.batches import PackedBatches

# The tiny recipe's packed pre-training set: 21,277 rows x 256 = 5,446,912 tokens, measured with prepare_data(tiny)
# + its 4096-token BPE + pack_corpus. 20x that is ~109M tokens, 416 MiB as int32.
TINY_PACKED_TOKENS = 5_446_912
SEQ = 256


def _write_packed(out, n_rows: int, seq: int = SEQ, vocab: int = 4096, chunk_rows: int = 16384) -> dict:
    """A packed set of random token rows in the packer's shard layout, written chunk by chunk (never whole)."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shards = {"train": [], "val": []}
    for split, rows in (("train", n_rows), ("val", 64)):
        for i, start in enumerate(range(0, rows, chunk_rows)):
            part = rng.integers(0, vocab, (min(chunk_rows, rows - start), seq), dtype=np.int32)
            got = pack.write_shards(part, out, f"{split}-c{i:03d}")  # one shard per chunk
            shards[split] += [{"file": s["file"], "rows": s["rows"]} for s in got]
    from qwenflow.artifacts import write_manifest

    splits = {k: {"rows": sum(s["rows"] for s in v), "shards": v} for k, v in shards.items()}
    return write_manifest(
        out,
        kind="packed",
        seq_len=seq,
        vocab_size=vocab,
        splits=splits,
        rows={s["file"][: -len(".parquet")]: s["rows"] for v in shards.values() for s in v},
    )


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_rank_memory_stays_flat_over_20x_tiny(tmp_path):
    n_rows = 20 * TINY_PACKED_TOKENS // SEQ
    m = _write_packed(tmp_path / "big", n_rows)
    total_mb = 4 * n_rows * SEQ / 2**20
    assert len(m["files"]) > 20 and total_mb > 350
    batches = PackedBatches(tmp_path / "big", micro_batch=16, global_batch=32, seed=0, rank=1, world=2)
    batches.micro_batch(0, 1)
    base = peak = _rss_mb()
    steps = batches.n_blocks // 2  # one epoch: this rank serves every other block of it
    seen = 0
    for step in range(steps):
        seen += batches.micro_batch(step, 1).numel()
        if step % 200 == 0:
            peak = max(peak, _rss_mb())
    peak = max(peak, _rss_mb())
    assert seen == steps * 16 * SEQ >= 0.49 * n_rows * SEQ  # half the set went through this rank
    # Streamed: one window (8M tokens: 32 MB int32 + its int64 batches) resident, not the 416 MiB set.
    print(
        f"rank 1 of 2 over a {total_mb:.0f} MiB packed set: RSS {base:.0f} MiB after the first batch, "
        f"peak {peak:.0f} MiB"
    )
    assert peak - base < 0.25 * total_mb, f"resident memory grew {peak - base:.0f} MiB over a {total_mb:.0f} MiB set"


def test_ranks_split_each_global_batch_which_does_not_depend_on_the_process_count(tmp_path, monkeypatch):
    monkeypatch.setattr(pack, "SHARD_TOKENS", 64 * 32)  # 64 rows a shard: 6 shards
    monkeypatch.setattr(pack, "ROW_GROUP_TOKENS", 16 * 32)
    rows = np.arange(384 * 32, dtype=np.int32).reshape(384, 32)
    (tmp_path / "p").mkdir()
    train = pack.write_shards(rows, tmp_path / "p", "train")
    val = pack.write_shards(rows[:8], tmp_path / "p", "val")
    from qwenflow.artifacts import write_manifest

    write_manifest(
        tmp_path / "p",
        kind="packed",
        seq_len=32,
        vocab_size=384 * 32,
        splits={"train": {"rows": 384, "shards": train}, "val": {"rows": 8, "shards": val}},
        rows={s["file"][:-8]: s["rows"] for s in train + val},
    )
    assert len(train) == 6

    def loader(rank, world):
        return PackedBatches(
            tmp_path / "p", micro_batch=4, global_batch=8, seed=3, rank=rank, world=world, window_tokens=4 * 32 * 10
        )

    one = loader(0, 1)
    assert one.n_windows > 1  # several windows: the streamed path
    steps = one.n_blocks // 2  # one epoch of 2-block steps
    single = [sorted(int(one.micro_batch(s, i)[0, 0]) // 32 for i in (0, 1)) for s in range(steps)]
    opened: dict[int, set[int]] = {0: set(), 1: set()}  # the shard files each rank read row groups from
    real, who = pq.ParquetFile.read_row_group, [0]

    def spy(self, i, *a, **kw):
        opened[who[0]].add(id(self))
        return real(self, i, *a, **kw)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    ranks = [loader(r, 2) for r in (0, 1)]
    two = []
    for s in range(steps):
        got = []
        for r in (0, 1):
            who[0] = r
            got.append(int(ranks[r].micro_batch(s, r)[0, 0]) // 32)
        two.append(sorted(got))
    assert two == single  # every step trains on the same rows with 1 or 2 processes
    # and each rank read only its own half of the rows: row groups of 3 of the 6 shards
    assert len(opened[0]) == 3 and len(opened[1]) == 3
    assert max(b for step in two for b in step[:1]) < 192 <= min(b for step in two for b in step[1:])
    with pytest.raises(ValueError, match="belongs to rank"):
        ranks[0].micro_batch(0, 1)
    # every epoch visits all 96 blocks once, and the next epoch in a different order
    assert sorted(b for step in single for b in step) == list(range(0, 384, 4))
    nxt = [sorted(int(one.micro_batch(s, i)[0, 0]) // 32 for i in (0, 1)) for s in range(steps, 2 * steps)]
    assert sorted(b for step in nxt for b in step) == list(range(0, 384, 4)) and nxt != single


def test_per_shard_contracts_aggregate_and_catch_a_bad_shard(tmp_path):
    m = _write_packed(tmp_path / "p", 3 * 16384 // 2, seq=64, vocab=1000, chunk_rows=8192)
    res = validate_sharded("packed", tmp_path / "p")
    shards = sorted(m["files"])
    assert res.success and sorted(res.rows) == shards and sum(res.rows.values()) == 3 * 8192 + 64
    assert {c["file"] for c in res.checks} >= set(shards)  # every shard checked by the packed contract
    # a shard with an out-of-vocabulary id (re-written, manifest updated so only the contract can catch it)
    bad = tmp_path / "p" / shards[1]
    t = pq.read_table(bad)
    ids = np.array(t.column("input_ids").to_pylist(), dtype=np.int32)
    ids[5, 3] = 5000
    pack.write_shards(ids, tmp_path / "p", "x")
    (tmp_path / "p" / "x-00000.parquet").replace(bad)
    from qwenflow.artifacts import sha256_file, write_manifest

    write_manifest(tmp_path / "p", **{k: v for k, v in m.items() if k not in ("created", "files")})
    assert (
        sha256_file(bad) == __import__("json").loads((tmp_path / "p" / "manifest.json").read_text())["files"][shards[1]]
    )
    res = validate_sharded("packed", tmp_path / "p", raise_on_failure=False)
    assert not res.success
    failed = {c["file"] for c in res.failures}
    assert failed == {shards[1]}, res.summary()
    # a shard removed: the aggregate says which
    (tmp_path / "p" / shards[2]).unlink()
    res = validate_sharded("packed", tmp_path / "p", raise_on_failure=False)
    assert any("missing" in str(c["observed"]) and shards[2] in str(c["observed"]) for c in res.failures)
