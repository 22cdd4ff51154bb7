"""Exact math answers: integers, decimals, fractions and \\boxed{...}, compared by value."""

from __future__ import annotations

import re
from fractions import Fraction

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def parse_number(text: str) -> Fraction | None:
    """A number written as 85, -3, 1,234, 0.5, 3/4 (commas and spaces ignored); None if it is not one."""
    s = str(text).strip().replace(",", "").replace(" ", "").rstrip(".")
    if not s:
        return None
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            return Fraction(Fraction(num), Fraction(den))
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def extract_answer(completion: str) -> str:
    """The answer part of a completion: the last \\boxed{}, else text after 'answer is'/'####', else all of it."""
    text = str(completion).strip()
    boxed = _BOXED.findall(text)
    if boxed:
        return boxed[-1].strip()
    for marker in ("####", "answer is", "Answer:"):
        if marker in text:
            return text.rsplit(marker, 1)[1].strip().rstrip(".")
    return text


def answers_match(completion: str, answer: str) -> bool:
    """Exact match: numbers by value (so '0.50' == '1/2'), anything else as whitespace-normalised text."""
    got = extract_answer(completion)
    want = str(answer).strip()
    a, b = parse_number(got), parse_number(want)
    if a is not None and b is not None:
        return a == b
    return " ".join(got.split()) == " ".join(want.split())


def math_reward(completions, answer, **kwargs) -> list[float]:
    """1.0 when the completion's answer equals the reference answer by value, else 0.0."""
    return [1.0 if answers_match(_text(c), a) else 0.0 for c, a in zip(completions, answer)]


def _text(completion) -> str:
    """TRL passes conversational completions as [{'role': 'assistant', 'content': ...}]; plain ones as str."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)
