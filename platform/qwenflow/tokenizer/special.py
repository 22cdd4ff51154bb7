"""The 22 Qwen2.5 control tokens, the pre-tokenizer split pattern and the ChatML template."""

from __future__ import annotations

from importlib import resources

# Tool-call and FIM tokens are ordinary text in Qwen2.5 (not skipped when decoding); the others are "special".
NOT_SPECIAL_TOKENS = [
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]
CONTROL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    *NOT_SPECIAL_TOKENS,
]
NOT_SPECIAL = set(NOT_SPECIAL_TOKENS)

# Qwen2's pre-tokenizer: digits split one by one (arithmetic needs it), letters kept in words.
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

EOS_TOKEN = "<|im_end|>"  # end of a chat turn: what generation stops on
PAD_TOKEN = "<|endoftext|>"  # also the document separator in pre-training


def chat_template() -> str:
    return (resources.files("qwenflow.tokenizer") / "chat_template.jinja").read_text(encoding="utf-8")
