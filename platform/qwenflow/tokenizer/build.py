"""The tokenizer stage: the real Qwen2.5 vocabulary, or a BPE trained on the prepared corpus."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from qwenflow.recipe import Recipe


def iter_parquet_texts(paths: Iterable[str | Path], column: str = "text", batch_rows: int = 1024) -> Iterator[str]:
    # lazy: imports pyarrow, numpy (230 ms)
    import pyarrow.parquet as pq

    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(columns=[column], batch_size=batch_rows):
            yield from (t for t in batch.column(0).to_pylist() if t)


def build_tokenizer(recipe: Recipe, out_dir: str | Path, texts: Iterable[str] | None = None):
    """Save a tokenizer directory (AutoTokenizer-loadable, offline) and return the tokenizer."""
    out_dir = Path(out_dir)
    if recipe.tokenizer.kind == "qwen2.5":
        # lazy: imports transformers, numpy (seconds to import)
        from .qwen import build_qwen_tokenizer

        tok = build_qwen_tokenizer()
    else:
        # lazy: imports transformers, numpy (seconds to import)
        from .bpe import train_bpe

        if texts is None:
            raise ValueError("tokenizer.kind is bpe: pass the corpus texts to train on (the prepared corpus parquet)")
        tok = train_bpe(texts, vocab_size=recipe.tokenizer.vocab_size, max_bytes=recipe.tokenizer.train_bytes)
    tok.save_pretrained(out_dir)
    return tok
