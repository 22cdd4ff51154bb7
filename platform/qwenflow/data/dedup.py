"""Exact dedup (hash of the normalised text) and near dedup (MinHash over word 5-grams + datasketch's LSH index).

The MinHash signatures are computed with numpy over all shingles at once: datasketch's own per-shingle
`update_batch` hashes each shingle with SHA-1 in Python and ran ~4x slower here; the LSH banding and
querying is datasketch's.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import xxhash
from datasketch import LeanMinHash, MinHashLSH

_WORD = re.compile(rb"\w+")
_PRIME = np.uint64((1 << 61) - 1)


class ExactDedup:
    def __init__(self):
        self.seen: set[int] = set()

    @staticmethod
    def key(text: str) -> int:
        """Hash of the text with whitespace runs collapsed (pure: computed in worker processes)."""
        return xxhash.xxh3_64_intdigest(" ".join(text.split()).encode("utf-8", "surrogatepass"))

    def is_duplicate(self, text: str) -> bool:
        return self.seen_key(self.key(text))

    def seen_key(self, key: int) -> bool:
        if key in self.seen:
            return True
        self.seen.add(key)
        return False


class NearDedup:
    """Keeps the first of each group of documents whose estimated Jaccard similarity of 5-gram sets >= threshold."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, shingle: int = 5, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, int(_PRIME), num_perm, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, int(_PRIME), num_perm, dtype=np.uint64)
        self.mix = rng.integers(1, 1 << 63, shingle, dtype=np.uint64) | np.uint64(1)
        self.shingle, self.num_perm, self.threshold = shingle, num_perm, threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.sigs: dict[str, np.ndarray] = {}

    def signature(self, text: str) -> np.ndarray:
        words = _WORD.findall(text.lower().encode("utf-8", "surrogatepass"))
        ids = np.fromiter(map(zlib.crc32, words), dtype=np.uint64, count=len(words))
        n = max(1, len(ids) - self.shingle + 1)
        if len(ids) < self.shingle:
            ids = np.pad(ids, (0, self.shingle - len(ids)))
        sh = ids[:n] * self.mix[0]
        for k in range(1, self.shingle):
            sh ^= ids[k : k + n] * self.mix[k]
        # no np.unique: repeated shingles cannot change a minimum, and sorting them cost more than they do
        # Universal hashing per permutation; uint64 arithmetic wraps, which keeps it a fine hash family.
        # The shift is monotonic, so it is applied once to the minima rather than to every product.
        out = np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        for i in range(0, len(sh), 4096):  # bounded memory for very long documents
            prod = sh[i : i + 4096, None] * self.a
            prod += self.b
            np.minimum(out, prod.min(0), out=out)
        return out >> np.uint64(29)

    def is_duplicate(self, text: str) -> bool:
        return self.seen_signature(self.signature(text))

    def seen_signature(self, sig: np.ndarray) -> bool:
        """Query + insert into the LSH index: sequential, in input order (the first of a group is the one kept)."""
        # LeanMinHash wraps the values as they are; MinHash(...) would draw 128 permutations per document first
        m = LeanMinHash(seed=1, hashvalues=sig, scheme="affine64")
        for key in self.lsh.query(m):
            if np.mean(self.sigs[key] == sig) >= self.threshold:  # LSH gives candidates; confirm the estimate
                return True
        key = str(len(self.sigs))
        self.sigs[key] = sig
        self.lsh.insert(key, m)
        return False
