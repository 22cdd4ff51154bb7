"""Fixtures for the training tests: a small real-text corpus and the overrides that keep training runs tiny."""

from __future__ import annotations

import pytest

from tests.conftest import stdlib_texts

# 1024-token vocab to match tiny_tokenizer_dir; micro 4 x accumulation 2 exercises gradient accumulation.
TINY = [
    "model.vocab_size=1024",
    "tokenizer.vocab_size=1024",
    "pretrain.seq_len=64",
    "pretrain.global_batch_size=8",
    "pretrain.micro_batch_size=4",
    "pretrain.max_steps=12",
    "pretrain.checkpoint_every=4",
    "pretrain.eval_every=6",
    "pretrain.warmup_ratio=0.2",
]


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    """corpus/{train,val}.parquet with a `text` column, as the data stage writes it (real stdlib source)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("data")
    corpus = root / "corpus"
    corpus.mkdir()
    texts = stdlib_texts(600_000)
    val = [t[:8000] for t in texts[::10]]
    train = [t for i, t in enumerate(texts) if i % 10]
    pq.write_table(pa.table({"text": train}), corpus / "train.parquet")
    pq.write_table(pa.table({"text": val}), corpus / "val.parquet")
    return root
