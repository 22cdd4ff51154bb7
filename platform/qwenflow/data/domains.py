"""Domain classification (code, math, reference, literature, web, ...) and resampling to the recipe's mixture.

Named sources carry a domain label. A hashed n-gram logistic regression is trained on those labelled documents
and labels the records that arrive without one (user folders); its agreement with the labelled sources is
reported as a sanity figure. Shares are measured in UTF-8 bytes: the tokenizer is trained after this stage.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression

HEAD = 3000


class DomainClassifier:
    def __init__(self, seed: int = 0):
        self.seed = seed
        # Symbols are tokens: braces, colons and operators are what tell code and math from prose.
        self.vec = HashingVectorizer(
            n_features=1 << 18,
            ngram_range=(1, 2),
            alternate_sign=False,
            token_pattern=r"(?u)\b\w+\b|[^\w\s]",
            norm="l2",
        )
        self.clf = LogisticRegression(C=4.0, max_iter=300)
        self.accuracy: float | None = None
        self.single: str | None = None  # the one domain when training data has only one

    def fit(self, texts: list[str], domains: list[str], per_domain: int = 400) -> DomainClassifier:
        train, held = self.sample_positions(domains, per_domain)
        return self.fit_sample([(texts[i], d) for i, d in train], [(texts[i], d) for i, d in held])

    def sample_positions(
        self, domains: list[str], per_domain: int = 400
    ) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        """(position, domain) pairs fit() trains and checks on: a distributed run fetches only those documents."""
        rng = random.Random(self.seed)
        by: dict[str, list[int]] = defaultdict(list)
        for i, d in enumerate(domains):
            by[d].append(i)
        train, held = [], []
        for d, idx in by.items():
            pick = rng.sample(idx, k=min(len(idx), per_domain + per_domain // 4))
            cut = len(pick) * 4 // 5
            train += [(i, d) for i in pick[:cut]]
            held += [(i, d) for i in pick[cut:]]
        return train, held

    def fit_sample(self, train: list[tuple[str, str]], held: list[tuple[str, str]]) -> DomainClassifier:
        by = {d for _, d in train + held}
        if len(by) < 2:
            self.single = next(iter(by), "web")
            return self
        self.single = None
        self.clf.fit(self.vec.transform([t[:HEAD] for t, _ in train]), [d for _, d in train])
        if held:
            pred = self.predict([t for t, _ in held])
            self.accuracy = float(np.mean([p == d for p, (_, d) in zip(pred, held)]))
        return self

    def predict(self, texts: list[str]) -> list[str]:
        if not texts:
            return []
        if self.single:
            return [self.single] * len(texts)
        return list(self.clf.predict(self.vec.transform([t[:HEAD] for t in texts])))


def byte_mixture(records: list[dict]) -> dict[str, float]:
    sizes: Counter[str] = Counter()
    for r in records:
        sizes[r["domain"]] += len(r["text"].encode("utf-8", "surrogatepass"))
    total = sum(sizes.values()) or 1
    return {d: sizes[d] / total for d in sorted(sizes)}


def resample(
    records: list[dict], mixture: dict[str, float], max_upsample: float, seed: int, drops: Counter
) -> tuple[list[dict], dict]:
    """Down-sample plentiful domains and repeat scarce ones (at most max_upsample times) to hit the mixture.

    The total is the largest that keeps every domain within max_upsample repeats and does not grow the corpus."""
    positions, info = resample_plan(
        [r["domain"] for r in records],
        [len(r["text"].encode("utf-8", "surrogatepass")) for r in records],
        mixture,
        max_upsample,
        seed,
        drops,
    )
    return [records[i] for i in positions], info


def resample_plan(
    domains: list[str], sizes: list[int], mixture: dict[str, float], max_upsample: float, seed: int, drops: Counter
) -> tuple[list[int], dict]:
    """resample() on each record's (domain, UTF-8 bytes) alone: the positions of the output records, in output order.
    A distributed run plans from these two columns and then moves the records once."""
    rng = random.Random(seed)
    by: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(domains):
        if mixture.get(d, 0) <= 0:
            drops["domain_not_in_mixture"] += 1
            continue
        by[d].append(i)
    size = {d: sum(sizes[i] for i in idx) for d, idx in by.items()}
    weights = {d: w for d, w in mixture.items() if w > 0 and size.get(d, 0) > 0}
    missing = sorted(d for d, w in mixture.items() if w > 0 and size.get(d, 0) == 0)
    if not weights:
        return [], {"target": mixture, "effective_target": {}, "missing_domains": missing}
    wsum = sum(weights.values())
    weights = {d: w / wsum for d, w in weights.items()}  # domains with no data give their share to the rest
    total = min(sum(size.values()), min(size[d] * max_upsample / w for d, w in weights.items()))
    out: list[int] = []
    for d, w in sorted(weights.items()):
        want = total * w
        docs = by[d][:]
        rng.shuffle(docs)
        got = 0
        i = 0
        while got < want and i < len(docs) * max_upsample + 1:
            r = docs[i % len(docs)]
            out.append(r)
            got += sizes[r]
            i += 1
        if i < len(docs):
            drops["downsampled_for_mixture"] += len(docs) - i
    rng.shuffle(out)
    return out, {"target": mixture, "effective_target": weights, "missing_domains": missing}
