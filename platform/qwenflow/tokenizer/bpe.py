"""Train a small byte-level BPE (tokenizers library) with Qwen's split pattern, control tokens and chat template."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from .special import CONTROL_TOKENS, EOS_TOKEN, NOT_SPECIAL, PAD_TOKEN, QWEN_SPLIT_PATTERN, chat_template


def _budgeted(texts: Iterable[str], max_bytes: int) -> Iterator[str]:
    used = 0
    for t in texts:
        if used >= max_bytes:
            return
        t = t[: max_bytes - used]
        used += len(t.encode("utf-8", "ignore"))
        yield t


def train_bpe(texts: Iterable[str], vocab_size: int = 4096, max_bytes: int = 32_000_000) -> PreTrainedTokenizerFast:
    """Byte-level BPE whose regular tokens take ids 0..vocab_size-23 and the 22 control tokens the last 22 ids,
    the same layout as Qwen2.5 (control tokens after the regular vocabulary)."""
    n_regular = vocab_size - len(CONTROL_TOKENS)
    if n_regular < 256:
        raise ValueError(f"vocab_size {vocab_size} is too small: byte-level BPE needs 256 + {len(CONTROL_TOKENS)} ids")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=n_regular,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(_budgeted(texts, max_bytes), trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=t not in NOT_SPECIAL, normalized=False) for t in CONTROL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        chat_template=chat_template(),
        model_max_length=1_000_000,
    )
