"""The prepared datasets on disk (`qwenflow data prepare`): each kind's files, Arrow schema and columns, and the Parquet
writer that holds files to them. The one table the writer, the data contracts and the post-training readers use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute in stream_parquet
import pyarrow.parquet as pq

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)
CORPUS = pa.schema([("text", pa.string()), ("source", pa.string()), ("domain", pa.string()), ("license", pa.string())])
PROMPTS = pa.schema([("prompt", MESSAGES), ("task", pa.string()), ("answer", pa.string())])


@dataclass(frozen=True)
class DatasetKind:
    files: tuple[str, ...] | None  # None: every *.parquet of the directory (pack's shards, one file per eval task)
    schema: pa.Schema | None  # what prepare writes (packed: written by qwenflow.data.pack)
    columns: tuple[str, ...]  # what its data contract requires
    needs: tuple[str, ...]  # what a training stage reads (a user-made set may carry only these)
    optional: tuple[str, ...] = ()  # checked by the contract when present


DATASETS = {
    "corpus": DatasetKind(("train.parquet", "val.parquet"), CORPUS, tuple(CORPUS.names), ("text",)),
    "packed": DatasetKind(None, None, ("input_ids",), ("input_ids",)),
    "sft": DatasetKind(
        ("train.parquet",),
        pa.schema([("messages", MESSAGES), ("task", pa.string()), ("answer", pa.string())]),
        ("messages", "task", "answer"),
        ("messages",),
    ),
    # criterion: which rule decides the pair (preference_pairs.py)
    "preferences": DatasetKind(
        ("train.parquet", "test.parquet"),
        pa.schema(
            [
                ("prompt", MESSAGES),
                ("chosen", MESSAGES),
                ("rejected", MESSAGES),
                ("task", pa.string()),
                ("criterion", pa.string()),
            ]
        ),
        ("prompt", "chosen", "rejected"),
        ("prompt", "chosen", "rejected"),
        optional=("criterion",),
    ),
    "rl": DatasetKind(("prompts.parquet",), PROMPTS, tuple(PROMPTS.names), tuple(PROMPTS.names)),
    "eval": DatasetKind(None, PROMPTS, tuple(PROMPTS.names), tuple(PROMPTS.names)),  # <task>.parquet each
}


ROW_GROUP_ROWS = 4096  # fixed, so a file streamed in batches (the Ray path) is byte-identical to one written whole


def write_parquet(rows: list[dict], path: Path, schema: pa.Schema) -> None:
    stream_parquet([pa.Table.from_pylist(rows, schema=schema)], path, schema)


def stream_parquet(tables, path: Path, schema: pa.Schema) -> tuple[int, int]:
    """Write an iterable of Arrow tables as one Parquet file in row groups of ROW_GROUP_ROWS, holding at most one
    row group in memory; returns (rows, UTF-8 bytes of `text` if the schema has it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    rows = nbytes = 0
    buf: list[pa.Table] = []
    buffered = 0
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:

        def flush(n: int) -> None:
            nonlocal buf, buffered
            table = pa.concat_tables(buf).combine_chunks()
            writer.write_table(table.slice(0, n), row_group_size=ROW_GROUP_ROWS)
            rest = table.slice(n)
            buf, buffered = ([rest] if rest.num_rows else []), rest.num_rows

        for t in tables:
            t = t.select(schema.names).cast(schema)
            rows += t.num_rows
            if "text" in schema.names:
                nbytes += int(pa.compute.sum(pa.compute.binary_length(t.column("text"))).as_py() or 0)
            buf.append(t)
            buffered += t.num_rows
            while buffered >= ROW_GROUP_ROWS:
                flush(ROW_GROUP_ROWS)
        if buffered:
            flush(buffered)
    tmp.replace(path)
    return rows, nbytes
