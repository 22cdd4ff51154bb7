"""Format checks: is the completion a clean, single answer of the expected shape?"""

from __future__ import annotations

import re

from .math import _text, parse_number

_CONTROL = re.compile(r"<\|[a-z_]+\|>")


def clean_format(completion) -> bool:
    """Non-empty, no leaked control tokens (`<|im_start|>` ...), no role header written out."""
    text = _text(completion).strip()
    return bool(text) and not _CONTROL.search(text) and not text.startswith(("user\n", "assistant\n"))


def format_reward(completions, **kwargs) -> list[float]:
    """1.0 for a clean completion (see clean_format), else 0.0."""
    return [1.0 if clean_format(c) else 0.0 for c in completions]


def number_only_reward(completions, **kwargs) -> list[float]:
    """1.0 when the whole completion is one number (what the arithmetic tasks ask for), else 0.0."""
    return [1.0 if parse_number(_text(c)) is not None else 0.0 for c in completions]
