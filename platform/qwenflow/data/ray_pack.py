"""Tokenization for packing on Ray Data: documents are tokenized by tasks in corpus order and streamed back, so the
packer cuts the same token stream into the same rows as the single-process path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from .documents import _eos, encode_documents
from .ray_runtime import _CACHE, ray_session

DOCS_PER_BATCH = 256


def _tokenize_block(t: pa.Table, tokenizer_dir: str) -> dict:
    tok = _CACHE.get(("tokenizer", tokenizer_dir))
    if tok is None:  # once per worker process
        # lazy: 16 ms to import, needed only here
        from qwenflow.tokenizer import load_tokenizer

        tok = _CACHE[("tokenizer", tokenizer_dir)] = load_tokenizer(tokenizer_dir)
    texts = [x for x in t.column("text").to_pylist() if x]
    return {"ids": [encode_documents(texts, tok, _eos(tok))]}


def ray_token_chunks(parquet: Path, tokenizer_dir, workers: int = 0):
    with ray_session(workers):
        # lazy: imports ray, pandas, pyarrow (seconds to import)
        import ray.data as rd

        ds = rd.read_parquet(str(parquet), columns=["text"]).map_batches(
            _tokenize_block,  # type: ignore[arg-type]  # ray's annotation has no place for fn_kwargs parameters
            batch_format="pyarrow",
            batch_size=DOCS_PER_BATCH,
            fn_kwargs={"tokenizer_dir": str(tokenizer_dir)},
        )
        for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
            for ids in batch["ids"]:
                yield np.asarray(ids, dtype=np.int32)
