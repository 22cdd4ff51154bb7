"""Normalisation, heuristic filters, exact/near dedup and the learned quality scorer."""

import random
from collections import Counter

from qwenflow.data.clean import heuristic_reason, normalise, split_long
from qwenflow.data.dedup import ExactDedup, NearDedup
from qwenflow.data.quality import QualityScorer
from qwenflow.data.sources import load_source
from qwenflow.recipe import load_recipe

SPEC = load_recipe("tiny").data
PROSE = (
    "The committee met on Tuesday to discuss the new library, which will open next spring. Members agreed that "
    "the reading room needs more light, and the architect promised revised drawings within a month. "
) * 3


def test_normalise_fixes_newlines_controls_and_blank_runs():
    assert normalise("a\r\nb\x00c  \n\n\n\n\nd\u0065\u0301") == "a\nbc\n\n\nd\u00e9"


def test_split_long_cuts_at_line_breaks_and_loses_nothing():
    text = "\n".join(f"line {i} " + "x" * 50 for i in range(1000))
    parts = list(split_long(text, 5000))
    assert "".join(parts) == text and all(len(p) <= 5000 for p in parts) and all(p.endswith("\n") for p in parts[:-1])


def test_each_heuristic_filter_fires_for_its_own_reason():
    assert heuristic_reason(PROSE, SPEC) is None
    assert heuristic_reason("too short", SPEC) == "too_short"
    assert heuristic_reason("#$%&*!@" * 60 + PROSE[:100], SPEC) == "symbol_ratio"
    assert heuristic_reason("\n".join(["BUY CHEAP WATCHES NOW!!"] * 30), SPEC) == "repetition"
    assert heuristic_reason("spam " * 400, SPEC) == "repetition"  # one endless line of a single word


def test_exact_dedup_ignores_whitespace_differences():
    d = ExactDedup()
    assert not d.is_duplicate(PROSE)
    assert d.is_duplicate(PROSE.replace(" ", "  "))
    assert not d.is_duplicate(PROSE + " Different ending.")


def test_near_dedup_catches_small_edits_and_keeps_distinct_documents():
    words = " ".join(f"word{random.Random(i).randint(0, 10**6)}" for i in range(400))
    edited = words.split()
    edited[100] = "changed"
    edited[300] = "also"
    other = " ".join(f"term{random.Random(i + 99).randint(0, 10**6)}" for i in range(400))
    d = NearDedup(threshold=0.8)
    assert not d.is_duplicate(words)
    assert d.is_duplicate(" ".join(edited))
    assert not d.is_duplicate(other)


def test_a_corpus_of_duplicates_collapses_to_one_document():
    exact, near = ExactDedup(), NearDedup()
    kept = [
        t for t in [PROSE] * 50 + [PROSE + " (copy)"] * 50 if not exact.is_duplicate(t) and not near.is_duplicate(t)
    ]
    assert kept == [PROSE]


def test_quality_scorer_ranks_real_text_above_junk():
    fit, held = [], []
    for name, cap in (("python_docs", 1_200_000), ("bible", 300_000), ("go_src", 600_000)):
        texts = [r["text"] for r in load_source(name, cap, Counter()) if len(r["text"]) > 500]
        assert len(texts) >= 40, name
        fit += texts[:30]
        held += texts[30:40]
    scorer = QualityScorer(seed=0).fit(fit)
    rng = random.Random(1)
    vocab = " ".join(held).split()
    salad = [" ".join(rng.choice(vocab) for _ in range(300)) for _ in range(20)]
    spam = [" ".join(rng.choice(vocab[:5]) for _ in range(300)) for _ in range(5)]
    good, bad = scorer.score(held), scorer.score(salad + spam)
    assert good.mean() > bad.mean() + 0.3
    assert (good >= SPEC.quality_threshold).mean() >= 0.9  # the recipe threshold keeps real text
    assert (bad < 0.5).mean() >= 0.8
