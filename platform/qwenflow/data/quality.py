"""A learned quality scorer in the spirit of the Qwen2.5 report's model-based filter.

Two parts, both fitted per run on a sample of the documents that passed the heuristics:
1. a reference language model (word bigrams with Dirichlet smoothing towards unigrams, fitted on half the sample)
   that turns a text into perplexity-style features: how much the previous word helps predict the next one
   (syntax), how likely the words are, how many are unknown, how varied they are;
2. a logistic regression (scikit-learn) over those features, trained on the other half of the sample (positives)
   against the same documents broken the ways bad web text is broken (word salad, shuffled order, keyboard
   noise, keyword spam), since no labelled crawl ships here. It outputs P(good) in [0, 1].
Features of a reference model rather than raw n-gram identities generalise across domains (code, prose, verse).
"""
from __future__ import annotations

import math
import random
import re
import string
from collections import Counter

import numpy as np
from sklearn.linear_model import LogisticRegression

SCORE_CHARS = 1500  # the head of a document is enough to judge it and keeps scoring fast
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text[:SCORE_CHARS].lower())


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


class BigramLM:
    """Word bigram model smoothed towards the unigram distribution (the 'reference model')."""

    def __init__(self, texts: list[str], alpha: float = 2.0):
        self.uni: Counter = Counter()
        self.bi: Counter = Counter()
        for t in texts:
            toks = _tokens(t)
            self.uni.update(toks)
            self.bi.update(zip(toks, toks[1:]))
        self.total = sum(self.uni.values()) or 1
        self.vocab = len(self.uni) + 1
        self.alpha = alpha

    def features(self, text: str) -> list[float]:
        toks = _tokens(text)
        if len(toks) < 2:
            return [0.0, 0.0, -20.0, 1.0, 1.0, 1.0]
        gain, known_gain, known, uni_lp, oov = 0.0, 0.0, 0, 0.0, 0
        for prev, w in zip(toks, toks[1:]):
            cw = self.uni.get(w, 0)
            oov += cw == 0
            p_uni = (cw + 1) / (self.total + self.vocab)
            p_bi = (self.bi.get((prev, w), 0) + self.alpha * p_uni) / (self.uni.get(prev, 0) + self.alpha)
            g = math.log(p_bi / p_uni)
            gain += g
            uni_lp += math.log(p_uni)
            if cw and prev in self.uni:  # unknown words carry no syntax signal; judge transitions between known ones
                known_gain += g
                known += 1
        n = len(toks) - 1
        top_share = Counter(toks).most_common(1)[0][1] / len(toks)  # keyword spam repeats one word
        return [gain / n, known_gain / max(known, 1), uni_lp / n, oov / n, len(set(toks)) / len(toks), top_share]


class QualityScorer:
    def __init__(self, seed: int = 0):
        self.seed = seed
        self.clf = LogisticRegression(C=1.0, max_iter=500)
        self.lm: BigramLM | None = None

    def fit(self, texts: list[str], max_docs: int = 800) -> "QualityScorer":
        rng = random.Random(self.seed)
        sample = rng.sample(texts, k=min(max_docs, len(texts)))
        if len(sample) < 10:
            raise ValueError(f"the quality scorer needs at least 10 documents to learn from, got {len(sample)}; "
                             "add sources or raise data.max_bytes_per_source")
        half = len(sample) // 2
        self.lm = BigramLM(sample[:half])  # the reference model never sees the classifier's positives
        good = sample[half:]
        vocab = sorted({w for t in good[:200] for w in t[:SCORE_CHARS].split()})[:20000] or ["x"]
        bad = [corrupt(t, rng, vocab) for t in good]
        X = np.array([self.lm.features(t) for t in good + bad])
        y = np.r_[np.ones(len(good)), np.zeros(len(bad))]
        self.mean, self.std = X.mean(0), X.std(0) + 1e-6
        self.clf.fit((X - self.mean) / self.std, y)
        return self

    def score(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        X = np.array([self.lm.features(t) for t in texts])
        return self.clf.predict_proba((X - self.mean) / self.std)[:, 1]
