"""Documents as the token stream packing cuts: each document's ids and the separator after it. Shared by the
single-process packer (qwenflow.data.pack) and its Ray Data tokenizer (qwenflow.data.ray_pack)."""

from __future__ import annotations

import numpy as np

SEPARATOR = "<|endoftext|>"


def _eos(tokenizer) -> int:
    eos = tokenizer.get_vocab().get(SEPARATOR)
    if eos is None:
        raise ValueError(f"the tokenizer has no {SEPARATOR} token; pack needs it as the document separator")
    return eos


def encode_documents(texts: list[str], tokenizer, eos: int) -> np.ndarray:
    """Documents as one int32 stream, EOS after each (the same ids however the documents are batched)."""
    if not texts:
        return np.zeros(0, dtype=np.int32)
    return np.concatenate(
        [np.asarray(ids + [eos], dtype=np.int32) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    )
