"""Normalisation, splitting of over-long documents, and the heuristic quality filters (length, symbols, repetition)."""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterator

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRAILING_WS = re.compile(r"[ \t]+\n")
_BLANK_RUNS = re.compile(r"\n{4,}")
_SYMBOL = re.compile(r"[^\w\s]")


def normalise(text: str) -> str:
    """NFC, Unix newlines, no control characters or trailing blanks, at most two blank lines in a row."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    text = _TRAILING_WS.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n\n", text).strip()


def split_long(text: str, max_chars: int) -> Iterator[str]:
    """Cut a document longer than max_chars at line breaks (hard cuts only inside a single over-long line)."""
    if len(text) <= max_chars:
        yield text
        return
    start = 0
    while start < len(text):
        end = min(start + max_chars, len(text))
        if end < len(text):
            nl = text.rfind("\n", start + max_chars // 2, end)
            end = nl + 1 if nl > 0 else end
        yield text[start:end]
        start = end


# What `\w` and `\s` match among ASCII characters (str patterns: \s includes \x1c-\x1f).
_ASCII_WORD_OR_SPACE = (string.ascii_letters + string.digits + "_" + " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f").encode()


def symbol_ratio(text: str) -> float:
    """Share of characters that are neither letters/digits nor whitespace."""
    if text.isascii():  # same count as the regex, by deleting word and space bytes in C (most text is ASCII)
        return len(text.encode().translate(None, _ASCII_WORD_OR_SPACE)) / max(1, len(text))
    return len(_SYMBOL.findall(text)) / max(1, len(text))


def repetition(text: str, min_line: int = 10) -> float:
    """Share of substantive lines (>= min_line chars) that duplicate an earlier line: boilerplate, spam, loops."""
    lines = [ln.strip() for ln in text.split("\n")]
    lines = [ln for ln in lines if len(ln) >= min_line]
    if len(lines) < 4:
        return 0.0
    return 1.0 - len(set(lines)) / len(lines)


def heuristic_reason(text: str, spec) -> str | None:
    """The first heuristic filter a document fails (a drop reason), or None to keep it."""
    if len(text) < spec.min_chars:
        return "too_short"
    if symbol_ratio(text) > spec.max_symbol_ratio:
        return "symbol_ratio"
    if repetition(text) > spec.max_repetition:
        return "repetition"
    if _few_distinct_words(text):
        return "repetition"
    return None


def _few_distinct_words(text: str) -> bool:
    """A few words repeated over and over (often one endless line) escape the line-based check."""
    words = text[:20000].split()
    return len(words) >= 50 and len(set(words)) < 0.05 * len(words)
