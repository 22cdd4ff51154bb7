"""A learned quality scorer in the spirit of the Qwen2.5 report's model-based filter.

No labelled web crawl ships here, so the classifier learns "curated text" vs "corrupted text": positives are a
sample of the documents that passed the heuristics, negatives are the same documents broken the ways bad web text
is broken (word salad, shuffled word order, keyboard noise, keyword spam). A hashed word uni+bigram logistic
regression (scikit-learn, the fastText-classifier recipe) then scores every document in [0, 1].
"""
from __future__ import annotations

import random
import string

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression

SCORE_CHARS = 4000  # the head of a document is enough to judge it and keeps scoring fast


def corrupt(text: str, rng: random.Random, vocab: list[str]) -> str:
    words = text[:SCORE_CHARS].split() or ["x"]
    kind = rng.randrange(4)
    if kind == 0:  # word salad: real words, no syntax
        return " ".join(rng.choice(vocab) for _ in words)
    if kind == 1:  # shuffled order
        rng.shuffle(words)
        return " ".join(words)
    if kind == 2:  # keyboard noise mixed into the text
        noise = string.ascii_letters + string.digits + string.punctuation
        return " ".join(w if rng.random() < 0.4 else "".join(rng.choice(noise) for _ in range(rng.randint(2, 9)))
                        for w in words)
    spam = rng.sample(vocab, k=min(len(vocab), 6))  # keyword spam
    return " ".join(rng.choice(spam) for _ in words)


class QualityScorer:
    def __init__(self, seed: int = 0):
        self.seed = seed
        self.vec = HashingVectorizer(n_features=1 << 18, ngram_range=(1, 2), alternate_sign=False,
                                     token_pattern=r"(?u)\b\w+\b|[^\w\s]", norm="l2")
        self.clf = LogisticRegression(C=4.0, max_iter=300)

    def fit(self, texts: list[str], max_docs: int = 1500) -> "QualityScorer":
        rng = random.Random(self.seed)
        sample = rng.sample(texts, k=min(max_docs, len(texts)))
        if len(sample) < 10:
            raise ValueError(f"the quality scorer needs at least 10 documents to learn from, got {len(sample)}; "
                             "add sources or raise data.max_bytes_per_source")
        vocab = list({w for t in sample[:200] for w in t[:SCORE_CHARS].split()})[:20000] or ["x"]
        bad = [corrupt(t, rng, vocab) for t in sample]
        good = [t[:SCORE_CHARS] for t in sample]
        X = self.vec.transform(good + bad)
        y = np.r_[np.ones(len(good)), np.zeros(len(bad))]
        self.clf.fit(X, y)
        return self

    def score(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return self.clf.predict_proba(self.vec.transform([t[:SCORE_CHARS] for t in texts]))[:, 1]
