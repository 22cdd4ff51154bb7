"""long_context.retrieval_fraction: packed training sequences rewritten as passkey documents over their own text."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq

from qwenflow.data.pack import pack_corpus, shard_files
from qwenflow.tokenizer import load_tokenizer
from tests.conftest import stdlib_texts


def test_pack_mixes_passkey_documents_into_train_rows_only(tiny_tokenizer_dir, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    texts = stdlib_texts(300_000)
    pq.write_table(pa.table({"text": texts[1:]}), corpus / "train.parquet")
    pq.write_table(pa.table({"text": texts[:1]}), corpus / "val.parquet")
    kw = dict(long_fraction=0.4, short_len=128, block_rows=2, seed=0)
    plain = pack_corpus(tmp_path, tiny_tokenizer_dir, 512, tmp_path / "plain", **kw)
    mixed = pack_corpus(tmp_path, tiny_tokenizer_dir, 512, tmp_path / "mixed", retrieval_fraction=0.5, **kw)

    tok = load_tokenizer(tiny_tokenizer_dir)
    t_plain, t_mixed = (pq.read_table(shard_files(d, "train")[0]) for d in (tmp_path / "plain", tmp_path / "mixed"))
    assert t_mixed.column("segment_len").to_pylist() == t_plain.column("segment_len").to_pylist()
    n_seq = found = 0
    for row, seg in zip(t_mixed.column("input_ids").to_pylist(), t_mixed.column("segment_len").to_pylist()):
        assert len(row) == 512
        for start in range(0, 512, seg):
            n_seq += 1
            text = tok.decode(row[start : start + seg])
            if text.startswith("There is a pass key hidden"):
                found += 1  # the answer at the end is the key hidden in the text
                key = re.search(r"The pass key is (\d{5})\. Remember it\.", text).group(1)
                assert text.endswith(f"What is the pass key? The pass key is {key}<|endoftext|>"), text[-80:]
    assert found == mixed["splits"]["train"]["retrieval_documents"]
    assert 0.35 < found / n_seq < 0.65
    # held-out rows stay plain text, so val loss stays comparable with and without the mixture
    assert pq.read_table(shard_files(tmp_path / "mixed", "val")[0]).equals(
        pq.read_table(shard_files(tmp_path / "plain", "val")[0])
    )
    assert "retrieval_documents" not in plain["splits"]["train"]
