"""Decontamination: exact LCS, the 13-token / 0.6 rule, the n-gram prefilter finds items inside long documents."""

import random

from qwenflow.data.benchmarks import benchmark_texts
from qwenflow.data.decontam import Decontaminator, lcs_len


def _dp(a, b):
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a)):
        for j in range(len(b)):
            t[i + 1][j + 1] = t[i][j] + 1 if a[i] == b[j] else max(t[i][j + 1], t[i + 1][j])
    return t[-1][-1]


def test_bit_parallel_lcs_matches_the_textbook_table():
    rng = random.Random(0)
    for _ in range(200):
        a = [rng.choice("abcdef") for _ in range(rng.randint(0, 40))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 40))]
        assert lcs_len(a, b) == _dp(a, b)


ITEM = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa"  # 16 tokens


def test_rule_needs_13_tokens_and_60_percent_of_the_shorter():
    d = Decontaminator({"bench": [ITEM]})
    words = ITEM.split()
    assert d.match("intro text " + " ".join(words[:13]) + " outro") == "bench"  # 13 in a row: contaminated
    assert d.match("intro text " + " ".join(words[:12]) + " outro") is None  # 12: below the bar
    gappy = " ".join(w + " filler" for w in words[:14])  # subsequence with gaps
    assert d.match(" ".join(words[:8]) + " " + gappy) == "bench"
    long_item = ITEM + " " + " ".join(f"w{i}" for i in range(30))  # 46 tokens: 0.6 of it is 27.6
    doc = (
        " ".join(f"d{i}" for i in range(40))
        + " "
        + long_item.split(" w9 ")[0]
        + " "
        + " ".join(f"e{i}" for i in range(40))
    )
    d2 = Decontaminator({"b": [long_item]})
    assert d2.match(doc) is None  # 25 shared tokens: >= 13 but < 0.6 of the shorter
    assert d2.match(doc.replace(" e0 e1 e2", " w10 w11 w12")) == "b"  # 28 shared: contaminated


def test_real_benchmark_items_are_found_inside_long_training_documents():
    sets = benchmark_texts()
    assert {"mmlu", "gsm8k", "humaneval"} <= {k.split("_")[0] for k in sets} | set(sets)
    d = Decontaminator(sets)
    filler = "The quick brown fox jumps over the lazy dog. " * 200
    gsm = next(v for k, v in sets.items() if "gsm8k" in k)[3]
    assert d.match(filler + gsm + filler) is not None
    assert d.match(filler) is None
