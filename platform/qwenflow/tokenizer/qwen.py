"""The real Qwen2.5 tokenizer, built offline from the vocabulary file that ships in the `dashscope` package."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from tokenizers import AddedToken
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

from .special import CONTROL_TOKENS, EOS_TOKEN, NOT_SPECIAL, PAD_TOKEN, QWEN_SPLIT_PATTERN, chat_template

QWEN_REGULAR_TOKENS = 151_643


def qwen_vocab_file() -> Path:
    """Locate qwen.tiktoken (151,643 BPE ranks) without importing dashscope."""
    for dist, rel in (("dashscope", "dashscope/resources/qwen.tiktoken"),):
        try:
            path = Path(str(metadata.distribution(dist).locate_file(rel)))
        except metadata.PackageNotFoundError:
            continue
        if path.is_file():
            return path
    raise FileNotFoundError(
        "the Qwen2.5 vocabulary (qwen.tiktoken) was not found: install it with "
        "`pip install --no-deps -r requirements-data.txt` (package dashscope)"
    )


def build_qwen_tokenizer() -> PreTrainedTokenizerFast:
    """Qwen2.5's tokenizer: byte-level BPE, 22 control tokens at ids 151643-151664, ChatML template."""
    converter = TikTokenConverter(
        vocab_file=str(qwen_vocab_file()), pattern=QWEN_SPLIT_PATTERN, extra_special_tokens=CONTROL_TOKENS
    )
    backend = converter.converted()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        chat_template=chat_template(),
        model_max_length=131072,
    )
    _mark_control_tokens(tok)
    return tok


def _mark_control_tokens(tok: PreTrainedTokenizerFast) -> None:

    tok.add_tokens([AddedToken(t, special=t not in NOT_SPECIAL, normalized=False) for t in CONTROL_TOKENS])
