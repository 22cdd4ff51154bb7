"""Packing: exact lengths, separators between documents, no padding, and the long-context mixture."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from qwenflow.data.pack import mixture_segments, pack_corpus, shard_files
from qwenflow.tokenizer import load_tokenizer


def test_pack_rows_are_full_and_separated(corpus_dir, tiny_tokenizer_dir, tmp_path):
    m = pack_corpus(corpus_dir, tiny_tokenizer_dir, 128, tmp_path)
    tok = load_tokenizer(tiny_tokenizer_dir)
    eos = tok.get_vocab()["<|endoftext|>"]
    table = pq.read_table(shard_files(tmp_path, "train")[0])
    import pyarrow as pa

    field_type = table.schema.field("input_ids").type
    assert pa.types.is_list(field_type) and field_type.value_type == pa.int32()
    rows = np.array(table.column("input_ids").to_pylist())
    assert rows.shape[1] == 128 and len(rows) == m["splits"]["train"]["rows"] > 100
    # one separator per document; all tokens real (the only loss is the cut tail of the stream)
    assert (rows == eos).sum() >= m["splits"]["train"]["documents"] - 1
    assert m["stream_used_fraction"] >= 0.98 and m["real_token_fraction"] == 1.0
    assert set(m["files"]) == {"train-00000.parquet", "val-00000.parquet"} and m["vocab_size"] == len(tok)
    assert m["rows"] == {"train-00000": len(rows), "val-00000": m["splits"]["val"]["rows"]}
    # the text round-trips: decoding the first row gives the first document's opening
    first_doc = pq.read_table(corpus_dir / "corpus" / "train.parquet").column("text")[0].as_py()
    assert first_doc.startswith(tok.decode(rows[0][:20].tolist()))
    # packing the same inputs again reuses the result
    assert pack_corpus(corpus_dir, tiny_tokenizer_dir, 128, tmp_path)["created"] == m["created"]


def test_mixture_share_counts_sequences():
    seg = mixture_segments(4000, 2048, 256, 0.4, block_rows=2, seed=0)
    assert len(seg) == 4000 and set(seg) == {256, 2048}
    assert (seg[0::2] == seg[1::2]).all()  # one shape per micro-batch
    long_rows, short_rows = (seg == 2048).sum(), (seg == 256).sum()
    assert long_rows / (long_rows + 8 * short_rows) == pytest.approx(0.4, abs=0.01)


def test_pack_errors_are_specific(tmp_path, tiny_tokenizer_dir):
    with pytest.raises(FileNotFoundError, match="train.parquet"):
        pack_corpus(tmp_path, tiny_tokenizer_dir, 128, tmp_path / "out")
