"""Pack a text corpus into fixed-length token sequences for pre-training and long-context training.

Documents are tokenized, joined with `<|endoftext|>` between them and cut into rows of exactly `seq_len` tokens,
so every token is a real one (no padding; only the stream's last partial row is dropped). Rows of the long-context
mixture also carry `segment_len`: a row with segment_len < seq_len is several independent shorter sequences laid
end to end; the trainer reshapes it to (seq_len // segment_len, segment_len) so attention never crosses them.
With retrieval_fraction set, that share of the training sequences becomes a passkey-retrieval document over its own
text (see add_retrieval), as real long-context data mixes synthetic retrieval tasks into long documents.

Output: Parquet shards `train-00000.parquet`, ... and `val-00000.parquet` of at most SHARD_TOKENS tokens each, in
row groups of about ROW_GROUP_TOKENS, and a manifest with each shard's sha256 and rows and the tokenizer's vocabulary
size; a training rank reads only its share of the rows (train/batches.py). The token stream goes through a
temporary memory-mapped file, so packing holds one shard in memory, not the corpus. With engine="ray" the documents
are tokenized by Ray Data tasks (in corpus order); the shards are the same bytes either way.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from qwenflow.artifacts import read_manifest, sha256_file, write_manifest
from qwenflow.tokenizer import load_tokenizer

from .documents import SEPARATOR, _eos, encode_documents
from .passkey import Passkeys

SHARD_TOKENS = 1 << 26  # 64M tokens = 256 MB of int32 per shard
ROW_GROUP_TOKENS = 1 << 20  # the unit a rank reads: 4 MB of int32
LAYOUT = "shards-v1"  # in the manifest's inputs, so a packing in the old single-file layout is redone


def corpus_files(corpus_dir: str | Path) -> dict[str, Path]:
    """{'train': ..., 'val': ...} for a corpus dir, or for a prepare_data dir that holds corpus/."""
    corpus_dir = Path(corpus_dir)
    if (corpus_dir / "corpus" / "train.parquet").is_file():
        corpus_dir = corpus_dir / "corpus"
    files = {split: corpus_dir / f"{split}.parquet" for split in ("train", "val")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{corpus_dir}: missing {', '.join(missing)}; pass the corpus directory written by "
            "`qwenflow data prepare` (corpus/train.parquet and val.parquet, column `text`)"
        )
    return files


def _texts(parquet: Path, batch_rows: int = 256):
    # lazy: imports pyarrow (88 ms)
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(parquet)
    if "text" not in pf.schema_arrow.names:
        raise ValueError(f"{parquet}: no `text` column (columns: {pf.schema_arrow.names})")
    for batch in pf.iter_batches(columns=["text"], batch_size=batch_rows):
        yield [t for t in batch.column(0).to_pylist() if t]


def _token_chunks(parquet: Path, tokenizer, tokenizer_dir, engine: str, workers: int):
    """The split's token stream, in document order, chunk by chunk."""
    if engine == "ray":
        # lazy: imports pyarrow (70 ms)
        from .ray_pack import ray_token_chunks

        yield from ray_token_chunks(parquet, tokenizer_dir, workers)
        return
    eos = _eos(tokenizer)
    for texts in _texts(parquet):
        yield encode_documents(texts, tokenizer, eos)


def token_stream(
    parquet: Path, tokenizer, path: Path | None = None, *, tokenizer_dir=None, engine: str = "local", workers: int = 0
) -> np.ndarray:
    """All documents of one split as one int32 stream, EOS after each: in memory, or (path given) written to that
    file as it is produced and returned memory-mapped."""
    out = open(path, "wb") if path is not None else None
    chunks, n = [], 0
    try:
        for ids in _token_chunks(parquet, tokenizer, tokenizer_dir, engine, workers):
            n += len(ids)
            if out is None:
                chunks.append(ids)
            else:
                out.write(ids.astype(np.int32, copy=False).tobytes())
    finally:
        if out is not None:
            out.close()
    if not n:
        raise ValueError(f"{parquet}: no non-empty documents")
    return np.concatenate(chunks) if path is None else np.memmap(path, dtype=np.int32, mode="r+", shape=(n,))


def _rows(stream: np.ndarray, seq_len: int) -> np.ndarray:
    n = len(stream) // seq_len
    return stream[: n * seq_len].reshape(n, seq_len)


def write_shards(rows: np.ndarray, out_dir: Path, split: str, segment_lens: np.ndarray | None = None) -> list[dict]:
    """`split`-00000.parquet, ... of at most SHARD_TOKENS tokens each; returns [{file, rows}] in order."""
    # lazy: imports pyarrow (88 ms)
    import pyarrow as pa
    import pyarrow.parquet as pq

    seq_len = rows.shape[1]
    per_shard = max(1, SHARD_TOKENS // seq_len)
    per_group = max(1, ROW_GROUP_TOKENS // seq_len)
    shards = []
    for i, start in enumerate(range(0, len(rows), per_shard)):
        part = np.ascontiguousarray(rows[start : start + per_shard])
        flat = pa.array(part.reshape(-1), type=pa.int32())
        cols = {"input_ids": pa.FixedSizeListArray.from_arrays(flat, seq_len).cast(pa.list_(pa.int32()))}
        if segment_lens is not None:
            cols["segment_len"] = pa.array(segment_lens[start : start + per_shard], type=pa.int32())
        path = out_dir / f"{split}-{i:05d}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(pa.table(cols), tmp, row_group_size=per_group)
        tmp.replace(path)
        shards.append({"file": path.name, "rows": int(len(part))})
    return shards


def shard_files(packed_dir: str | Path, split: str) -> list[Path]:
    """A packed split's shard files in order (from the manifest)."""
    packed_dir = Path(packed_dir)
    m = read_manifest(packed_dir)
    shards = (m.get("splits", {}).get(split) or {}).get("shards")
    if not shards:
        raise ValueError(
            f"{packed_dir}: the manifest lists no {split} shards; re-pack it (`qwenflow` packs on the "
            "next training run) - it was written by an older layout"
        )
    return [packed_dir / s["file"] for s in shards]


def mixture_segments(
    n_rows: int, seq_len: int, short_len: int, long_fraction: float, block_rows: int, seed: int = 0
) -> np.ndarray:
    """segment_len per row: `long_fraction` of all sequences are seq_len long, the rest short_len.

    Rows come in blocks of `block_rows` (the micro-batch) with one segment length each, so a micro-batch has one
    shape. A short row holds k = seq_len // short_len sequences; the long share f of sequences needs
    long_rows / short_rows = f * k / (1 - f).
    """
    if seq_len % short_len:
        raise ValueError(f"short length {short_len} must divide the stage length {seq_len}")
    k = seq_len // short_len
    n_blocks = n_rows // block_rows
    if n_blocks == 0:
        raise ValueError(
            f"only {n_rows} packed rows of {seq_len} tokens: not one micro-batch of {block_rows}; "
            "add text to the corpus or lower micro_batch_size"
        )
    long_share_rows = 1.0 if long_fraction >= 1 else long_fraction * k / (long_fraction * k + 1 - long_fraction)
    n_long = round(n_blocks * long_share_rows)
    kinds = np.array([seq_len] * n_long + [short_len] * (n_blocks - n_long), dtype=np.int32)
    np.random.default_rng(seed).shuffle(kinds)
    return np.repeat(kinds, block_rows)


def add_retrieval(rows: np.ndarray, segments: np.ndarray | None, tokenizer, fraction: float, seed: int = 0) -> int:
    """Rewrite `fraction` of the sequences in `rows` (in place) as passkey-retrieval documents of the same length:
    the sequence's own real text as haystack, a passkey at a random depth, the question, the answer and EOS
    (qwenflow.data.passkey, the prompt the long-context check and evaluation use). Returns how many."""
    keys, eos, rng, n = Passkeys(tokenizer), tokenizer.get_vocab()[SEPARATOR], random.Random(seed), 0
    for r in range(len(rows)):
        seg = rows.shape[1] if segments is None else int(segments[r])
        for start in range(0, rows.shape[1], seg):
            if rng.random() < fraction:
                doc = keys.document(rows[r, start : start + seg].tolist(), rng, eos)
                if doc is not None:
                    rows[r, start : start + seg] = doc
                    n += 1
    return n


def pack_corpus(
    corpus_dir: str | Path,
    tokenizer_dir: str | Path,
    seq_len: int,
    out_dir: str | Path,
    *,
    long_fraction: float | None = None,
    short_len: int | None = None,
    block_rows: int = 1,
    seed: int = 0,
    retrieval_fraction: float = 0.0,
    engine: str = "local",
    workers: int = 0,
) -> dict:
    """Write out_dir/{train,val}-NNNNN.parquet shards (`input_ids`: list<int32> of exactly seq_len) and manifest.json.

    With long_fraction set (the long-context mixture), train rows also get `segment_len` (see mixture_segments);
    val rows stay full length, since held-out loss at the full length is what long-context training is for.
    retrieval_fraction > 0 turns that share of the train sequences into passkey documents (add_retrieval); val rows
    stay plain text. engine: "local" tokenizes here, "ray" in Ray Data tasks (same shards). Returns the manifest.
    Re-packing the same inputs is skipped (the manifest records them).
    """

    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2, got {seq_len}")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    files = corpus_files(corpus_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    inputs = {
        "corpus": {k: sha256_file(p) for k, p in files.items()},
        "tokenizer": sha256_file(Path(tokenizer_dir) / "tokenizer.json")
        if (Path(tokenizer_dir) / "tokenizer.json").is_file()
        else None,
        "seq_len": seq_len,
        "long_fraction": long_fraction,
        "short_len": short_len,
        "block_rows": block_rows,
        "seed": seed,
        "layout": LAYOUT,
        **({"retrieval_fraction": retrieval_fraction} if retrieval_fraction else {}),
    }
    if not 0 <= retrieval_fraction < 1:
        raise ValueError(f"retrieval_fraction must be in [0, 1), got {retrieval_fraction}")
    try:
        old = read_manifest(out_dir)
        if old.get("inputs") == inputs and all((out_dir / f).is_file() for f in old.get("files", {})):
            return old
    except FileNotFoundError:
        pass
    for stale in out_dir.glob("*.parquet"):  # an earlier packing's shards must not be mistaken for this one's
        stale.unlink()

    tok = load_tokenizer(tokenizer_dir)
    eos = _eos(tok)
    stats: dict[str, dict[str, Any]] = {}
    shard_rows: dict = {}
    for split, path in files.items():
        fd, tmp = tempfile.mkstemp(prefix=f".{split}-", suffix=".tokens", dir=out_dir)
        os.close(fd)
        try:
            stream = token_stream(path, tok, Path(tmp), tokenizer_dir=tokenizer_dir, engine=engine, workers=workers)
            rows = _rows(stream, seq_len)
            if len(rows) == 0:
                raise ValueError(
                    f"{path}: only {len(stream)} tokens, fewer than one sequence of {seq_len}; add text "
                    "or lower seq_len"
                )
            segments = None
            if long_fraction is not None and split == "train":
                segments = mixture_segments(len(rows), seq_len, short_len or seq_len, long_fraction, block_rows, seed)
                rows = rows[: len(segments)]
            n_retrieval = (
                add_retrieval(rows, segments, tok, retrieval_fraction, seed)
                if retrieval_fraction and split == "train"
                else None
            )
            shards = write_shards(rows, out_dir, split, segments)
            stats[split] = {
                "rows": int(len(rows)),
                "tokens": int(rows.size),
                "documents": int((stream == eos).sum()),
                "stream_tokens": int(len(stream)),
                "shards": shards,
            }
            shard_rows.update({Path(sh["file"]).stem: sh["rows"] for sh in shards})
            del stream, rows
        finally:
            os.unlink(tmp)
        if segments is not None:
            long_rows = int((segments == seq_len).sum())
            short_rows = len(segments) - long_rows
            n_seq = long_rows + short_rows * (seq_len // (short_len or seq_len))
            stats[split]["long_sequence_share"] = long_rows / n_seq
        if n_retrieval is not None:
            stats[split]["retrieval_documents"] = n_retrieval
    # Every token in a row is text or a document separator: no padding. The share drops only by the cut tail.
    real = sum(s["tokens"] for s in stats.values()) / sum(s["stream_tokens"] for s in stats.values())
    return write_manifest(
        out_dir,
        kind="packed",
        seq_len=seq_len,
        vocab_size=len(tok),
        splits=stats,
        rows=shard_rows,
        real_token_fraction=1.0,
        stream_used_fraction=real,
        separator=SEPARATOR,
        inputs=inputs,
        engine=engine,
        schema={
            "input_ids": f"list<int32>[{seq_len}]",
            **({"segment_len": "int32"} if long_fraction is not None else {}),
        },
    )
