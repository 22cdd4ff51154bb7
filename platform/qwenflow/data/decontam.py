"""Decontamination by the Qwen2.5 report's rule: drop a training text whose longest common subsequence (LCS) with
an evaluation item is >= 13 tokens and >= 0.6 of the shorter of the two.

Exact LCS against every item would be quadratic in the corpus, so an n-gram index of the evaluation items picks
candidates first (a shared contiguous 8-gram, found with numpy over the whole document), and the LCS is computed
only for those, over a window of the training text around the shared n-gram. LCS is bit-parallel (Hyyro 2004)
on Python integers: O(len(window)) big-int steps per item instead of an O(n*m) table.
"""

from __future__ import annotations

import copy
import re
import zlib
from collections import Counter
from itertools import chain

import numpy as np

_WORD = re.compile(r"\w+")
NGRAM = 8
_MIX = np.random.default_rng(7).integers(1, 1 << 63, NGRAM, dtype=np.uint64) | np.uint64(1)


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def lcs_len(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists (bit-parallel)."""
    if not a or not b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    masks: dict[str, int] = {}
    for i, t in enumerate(a):
        masks[t] = masks.get(t, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for t in b:
        u = v & masks.get(t, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


class _TokenIds(dict):
    """token -> crc32, computed once per distinct token: a C-level dict lookup instead of encode + crc32 per token."""

    def __missing__(self, t: str) -> int:
        if len(self) > 2_000_000:  # bounded memory on corpora with endless distinct tokens (hex, numbers)
            self.clear()
        v = self[t] = zlib.crc32(t.encode("utf-8", "surrogatepass"))
        return v


_IDS = _TokenIds()


def _ngram_hashes(toks: list[str]) -> np.ndarray:
    if len(toks) < NGRAM:
        return np.zeros(0, dtype=np.uint64)
    ids = np.fromiter(map(_IDS.__getitem__, toks), dtype=np.uint64, count=len(toks))
    n = len(ids) - NGRAM + 1
    h = ids[:n] * _MIX[0]
    for k in range(1, NGRAM):
        h ^= ids[k : k + n] * _MIX[k]
    return h


def _item_ngrams(token_lists: list[list[str]], first: int) -> tuple[np.ndarray, np.ndarray]:
    """(n-gram hash, item index) for every n-gram of every item, items numbered from `first`: one numpy pass over
    all items' tokens together (n-grams that would cross from one item into the next are left out)."""
    lens = np.array([len(t) for t in token_lists], dtype=np.int64)
    total = int(lens.sum())
    if total < NGRAM:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    ids = np.fromiter(map(_IDS.__getitem__, chain.from_iterable(token_lists)), dtype=np.uint64, count=total)
    n = total - NGRAM + 1
    h = ids[:n] * _MIX[0]
    for k in range(1, NGRAM):
        h ^= ids[k : k + n] * _MIX[k]
    owner = np.repeat(np.arange(first, first + len(lens), dtype=np.int64), lens)[:n]
    ends = np.repeat(np.cumsum(lens), lens)[:n]  # one past the last token of each position's item
    inside = np.arange(n) + NGRAM <= ends
    return h[inside], owner[inside]


class Decontaminator:
    def __init__(self, test_sets: dict[str, list[str]], min_tokens: int = 13, min_ratio: float = 0.6):
        self.min_tokens, self.min_ratio = min_tokens, min_ratio
        self.items: list[tuple[str, list[str]]] = []
        self.sizes: dict[str, int] = {}
        self.keys, self.owners = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        self._add(test_sets)

    def extended(self, more_sets: dict[str, list[str]]) -> Decontaminator:
        """This index plus more sets (same as building from both; the items already here are not re-tokenised)."""
        new = copy.copy(self)
        new.items, new.sizes = list(self.items), dict(self.sizes)
        new._add(more_sets)
        return new

    def _add(self, test_sets: dict[str, list[str]]) -> None:
        first = len(self.items)
        for name, texts in test_sets.items():
            for text in texts:
                toks = tokens(text)
                if len(toks) < self.min_tokens:  # its LCS with anything is below min_tokens: it can never match
                    continue
                self.items.append((name, toks))
            self.sizes[name] = len(texts)
        h, owner = _item_ngrams([toks for _, toks in self.items[first:]], first)
        # A sorted array of distinct (n-gram hash, item) pairs, items ascending within a hash: searchsorted finds a
        # document's hits without a Python dict.
        h, owner = np.concatenate([self.keys, h]), np.concatenate([self.owners, owner])
        order = np.lexsort((owner, h))
        h, owner = h[order], owner[order]
        distinct = np.ones(len(h), dtype=bool)
        distinct[1:] = (h[1:] != h[:-1]) | (owner[1:] != owner[:-1])
        self.keys, self.owners = h[distinct], owner[distinct]
        # A one-byte-per-slot filter on the hashes' top bits (~3% of slots set) rules out almost every n-gram of a
        # training text with one gather; only the few that pass are binary-searched. 32 MB for ~1M n-grams.
        bits = int(np.clip(np.ceil(np.log2(max(1, len(self.keys)) * 32)), 16, 25))
        self.shift = np.uint64(64 - bits)
        self.filter = np.zeros(1 << bits, dtype=bool)
        self.filter[self.keys >> self.shift] = True

    def match(self, text: str) -> str | None:
        """The evaluation set a training text is contaminated with, or None."""
        toks = tokens(text)
        if len(toks) < self.min_tokens or not len(self.keys):
            return None
        hashes = _ngram_hashes(toks)
        if not len(hashes):
            return self._match_short(toks)
        cand = np.flatnonzero(self.filter[hashes >> self.shift])  # a few percent of the n-grams, mostly false alarms
        if not len(cand):
            return None
        left = np.searchsorted(self.keys, hashes[cand], side="left")
        found = self.keys[left.clip(max=len(self.keys) - 1)] == hashes[cand]
        hit, left = cand[found], left[found]
        right = np.searchsorted(self.keys, hashes[hit], side="right")
        checked: set[int] = set()
        for pos, lo, hi in zip(hit.tolist(), left.tolist(), right.tolist()):
            for item in self.owners[lo:hi].tolist():
                if item in checked:
                    continue
                checked.add(item)
                name, itoks = self.items[item]
                m = len(itoks)
                window = toks[max(0, pos - 2 * m) : pos + 3 * m]  # room for a gappy subsequence around the hit
                lcs = lcs_len(window, itoks)
                if lcs >= self.min_tokens and lcs >= self.min_ratio * min(len(toks), m):
                    return name
        return None

    def _match_short(self, toks: list[str]) -> str | None:
        # Texts shorter than the n-gram cannot be prefiltered; there are few and they are short, so check them all
        # against items of comparable length only (the 0.6-of-shorter rule rules the rest out).
        for name, itoks in self.items:
            if len(itoks) * self.min_ratio <= len(toks) * 2:
                lcs = lcs_len(toks, itoks)
                if lcs >= self.min_tokens and lcs >= self.min_ratio * min(len(toks), len(itoks)):
                    return name
        return None


def drop_contaminated(items: list, matches, drops: Counter, hits: Counter) -> list:
    """The items whose match (Decontaminator.match of each, in order) is None; the others are counted as
    `contaminated` in `drops` and by evaluation set in `hits`."""
    keep = []
    for item, name in zip(items, matches, strict=True):
        if name:
            drops["contaminated"] += 1
            hits[name] += 1
        else:
            keep.append(item)
    return keep
