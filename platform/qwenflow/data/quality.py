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

import random
import re
import string
from collections import Counter
from collections.abc import Sequence
from itertools import chain, repeat

import numpy as np
from sklearn.linear_model import LogisticRegression

from .parallel import map_batches

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
        return " ".join(
            w if rng.random() < 0.4 else "".join(rng.choice(noise) for _ in range(rng.randint(2, 9))) for w in words
        )
    spam = rng.sample(vocab, k=min(len(vocab), 6))  # keyword spam
    return " ".join(rng.choice(spam) for _ in words)


class BigramLM:
    """Word bigram model smoothed towards the unigram distribution (the 'reference model').

    Counts live in numpy arrays (token id -> count, sorted bigram keys -> count) so a document's features are a
    few vector operations instead of a Python loop per token; the arithmetic is the same, term for term."""

    def __init__(self, texts: list[str], alpha: float = 2.0):
        uni: Counter = Counter()
        bi: Counter = Counter()
        for t in texts:
            toks = _tokens(t)
            uni.update(toks)
            bi.update(zip(toks, toks[1:]))
        self.total = sum(uni.values()) or 1
        self.vocab = len(uni) + 1
        self.alpha = alpha
        self.ids = {w: i for i, w in enumerate(uni)}
        self.uni_counts = np.array(list(uni.values()), dtype=np.float64)
        v = len(self.ids)
        keys = np.array([self.ids[a] * v + self.ids[b] for a, b in bi], dtype=np.int64)
        order = np.argsort(keys)
        self.bi_keys = keys[order]
        self.bi_counts = np.array(list(bi.values()), dtype=np.float64)[order]

    def features(self, text: str) -> list[float]:
        return self.features_many([text])[0].tolist()

    def features_many(self, texts: Sequence[str]) -> np.ndarray:
        """One row of features per text. The per-token work runs once over all texts' tokens together."""
        toks = [_tokens(t) for t in texts]
        lens = np.array([len(t) for t in toks], dtype=np.int64)
        ids = np.fromiter(
            map(self.ids.get, chain.from_iterable(toks), repeat(-1)), dtype=np.int64, count=int(lens.sum())
        )
        known = ids >= 0
        counts = np.where(known, self.uni_counts[np.where(known, ids, 0)], 0.0)
        # transition j is (token j, token j + 1); those that cross from one text into the next are ignored below
        prev_known, w_known = known[:-1], known[1:]
        cw, c_prev = counts[1:], counts[:-1]
        key = ids[:-1] * len(self.ids) + ids[1:]
        if len(self.bi_keys):  # bigram counts: pairs with an unknown word have none
            pos = np.searchsorted(self.bi_keys, key).clip(max=len(self.bi_keys) - 1)
            c_bi = np.where(prev_known & w_known & (self.bi_keys[pos] == key), self.bi_counts[pos], 0.0)
        else:
            c_bi = np.zeros(len(key))
        p_uni = (cw + 1) / (self.total + self.vocab)
        p_bi = (c_bi + self.alpha * p_uni) / (c_prev + self.alpha)
        g = np.log(p_bi / p_uni)
        log_uni = np.log(p_uni)
        both = w_known & prev_known  # unknown words carry no syntax signal; judge transitions between known ones
        out = np.empty((len(texts), 6))
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        for i, (t, start, m) in enumerate(zip(toks, starts.tolist(), lens.tolist())):
            if m < 2:
                out[i] = [0.0, 0.0, -20.0, 1.0, 1.0, 1.0]
                continue
            sl = slice(start, start + m - 1)
            n = m - 1
            gi, bi = g[sl], both[sl]
            k = int(np.count_nonzero(bi))
            # cumsum adds left to right like a scalar loop, so the sums do not depend on how texts are batched
            known_gain = float(np.cumsum(gi[bi])[-1]) if k else 0.0
            top_share = Counter(t).most_common(1)[0][1] / m  # keyword spam repeats one word
            out[i] = [
                float(np.cumsum(gi)[-1]) / n,
                known_gain / max(k, 1),
                float(np.cumsum(log_uni[sl])[-1]) / n,
                (n - int(np.count_nonzero(w_known[sl]))) / n,
                len(set(t)) / m,
                top_share,
            ]
        return out


class QualityScorer:
    def __init__(self, seed: int = 0):
        self.seed = seed
        self.clf = LogisticRegression(C=1.0, max_iter=500)
        self.lm: BigramLM | None = None

    def fit(self, texts: list[str], max_docs: int = 800) -> QualityScorer:
        positions, rng = self.sample_positions(len(texts), max_docs)
        return self.fit_sample([texts[i] for i in positions], rng)

    def sample_positions(self, n: int, max_docs: int = 800) -> tuple[list[int], random.Random]:
        """Which of n documents fit() learns from, and the generator to continue with. Drawing positions is the same
        draw as rng.sample(texts): a distributed run fetches only these documents and fits the same scorer."""
        rng = random.Random(self.seed)
        return rng.sample(range(n), k=min(max_docs, n)), rng

    def fit_sample(self, sample: list[str], rng: random.Random) -> QualityScorer:
        if len(sample) < 10:
            raise ValueError(
                f"the quality scorer needs at least 10 documents to learn from, got {len(sample)}; "
                "add sources or raise data.max_bytes_per_source"
            )
        half = len(sample) // 2
        self.lm = BigramLM(sample[:half])  # the reference model never sees the classifier's positives
        good = sample[half:]
        vocab = sorted({w for t in good[:200] for w in t[:SCORE_CHARS].split()})[:20000] or ["x"]
        bad = [corrupt(t, rng, vocab) for t in good]
        X = self.lm.features_many(good + bad)
        y = np.r_[np.ones(len(good)), np.zeros(len(bad))]
        self.mean, self.std = X.mean(0), X.std(0) + 1e-6
        self.clf.fit((X - self.mean) / self.std, y)
        return self

    def score(self, texts: list[str], workers: int | None = 1) -> np.ndarray:
        """P(good) per text; the features are computed over `workers` processes (0 = every core)."""
        if not texts:
            return np.zeros(0)
        lm = self.lm
        if lm is None:
            raise RuntimeError("QualityScorer.score called before fit")
        # features_many's rows do not depend on how the texts are batched, so any split gives the same scores
        rows = map_batches(
            lambda part: list(lm.features_many(part)), texts, [min(len(t), SCORE_CHARS) for t in texts], workers
        )
        X = np.array(rows, dtype=np.float64).reshape(len(texts), -1)
        return self.clf.predict_proba((X - self.mean) / self.std)[:, 1]
