"""Tokenizers: the real Qwen2.5 vocabulary, or a small BPE trained on the corpus; both with ChatML."""

from __future__ import annotations

from pathlib import Path

from .special import CONTROL_TOKENS, EOS_TOKEN, PAD_TOKEN


def load_tokenizer(path: str | Path):
    """Load a saved tokenizer directory offline; error clearly when it is missing or lacks a chat template."""
    # lazy: imports torch, transformers, numpy (seconds to import)
    from transformers import AutoTokenizer

    path = Path(path)
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise FileNotFoundError(
            f"{path}: no tokenizer here (expected tokenizer.json); pass a directory saved by "
            "`qwenflow tokenizer build` or a model directory that includes its tokenizer"
        )
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if not tok.chat_template:
        raise ValueError(
            f"{path}: the tokenizer has no chat template; SFT, RL and chat serving need one "
            "(rebuild it with `qwenflow tokenizer build`)"
        )
    return tok


__all__ = ["CONTROL_TOKENS", "EOS_TOKEN", "PAD_TOKEN", "load_tokenizer"]
