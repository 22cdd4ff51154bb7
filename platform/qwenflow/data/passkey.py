"""Passkey retrieval prompts: the one prompt text, shared by training documents (qwenflow.data.pack), the
long-context check (qwenflow.longctx.passkey) and the evaluation sweep (qwenflow.eval.longcontext), so a model trained
on them is measured on the same format. Token-space prompts are built to an exact length, so a (length, depth) cell
batches without padding.
"""

from __future__ import annotations

import random

PREFIX = "There is a pass key hidden in this text. Find it.\n\n"
NEEDLE = " The pass key is {v}. Remember it. {v} is the pass key. "
QUESTION = "\n\nWhat is the pass key? The pass key is"


class Passkeys:
    """Passkey prompts of an exact token length, the key at a chosen depth of real filler text."""

    def __init__(self, tokenizer, filler: str = ""):
        self.tok = tokenizer
        self.enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]
        self.hay = self.enc(filler)
        self.prefix, self.question = self.enc(PREFIX), self.enc(QUESTION)

    def case(self, length: int, depth: float, rng: random.Random) -> tuple[list[int], str]:
        value = str(rng.randint(10000, 99999))
        needle = self.enc(NEEDLE.format(v=value))
        n_fill = length - len(self.prefix) - len(needle) - len(self.question)
        if n_fill < 0:
            raise ValueError(f"passkey length {length} is shorter than the prompt's fixed parts")
        start = rng.randrange(0, max(1, len(self.hay) - n_fill))
        fill = self.hay[start : start + n_fill]
        if len(fill) < n_fill:  # filler shorter than asked: repeat it
            fill = (self.hay * (n_fill // max(len(self.hay), 1) + 2))[start : start + n_fill]
        cut = int(depth * n_fill)
        return self.prefix + fill[:cut] + needle + fill[cut:] + self.question, value

    def answer_ids(self, value: str) -> list[int]:
        return self.enc(" " + value)

    def document(self, hay: list[int], rng: random.Random, eos: int) -> list[int] | None:
        """A training document of exactly len(hay) tokens: a passkey prompt over `hay` (real text), its answer and
        EOS; None when `hay` is too short to hold the prompt's fixed parts."""
        value = str(rng.randint(10000, 99999))
        needle, answer = self.enc(NEEDLE.format(v=value)), self.answer_ids(value)
        n_fill = len(hay) - len(self.prefix) - len(needle) - len(self.question) - len(answer) - 1
        if n_fill < 16:
            return None
        cut = rng.randint(0, n_fill)
        return self.prefix + hay[:cut] + needle + hay[cut:n_fill] + self.question + answer + [eos]
