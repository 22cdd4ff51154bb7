"""Domain classification and resampling to the recipe's mixture."""

from collections import Counter

from qwenflow.data.domains import DomainClassifier, byte_mixture, resample
from qwenflow.data.sources import load_source


def _docs(domain, n, size):
    return [
        {"text": f"{domain} doc {i} " + "x" * size, "source": domain, "domain": domain, "license": "l"}
        for i in range(n)
    ]


def test_resample_hits_the_target_mixture_and_counts_what_it_left_out():
    recs = _docs("code", 100, 1000) + _docs("literature", 100, 1000) + _docs("web", 10, 1000)
    drops = Counter()
    out, info = resample(recs, {"code": 0.5, "literature": 0.3, "web": 0.2}, max_upsample=3.0, seed=0, drops=drops)
    mix = byte_mixture(out)
    assert abs(mix["code"] - 0.5) < 0.03 and abs(mix["literature"] - 0.3) < 0.03 and abs(mix["web"] - 0.2) < 0.03
    assert drops["downsampled_for_mixture"] > 0
    assert max(Counter(r["text"] for r in out).values()) <= 3  # never more repeats than max_upsample


def test_domains_without_data_give_their_share_to_the_others():
    recs = _docs("code", 20, 500) + _docs("literature", 20, 500) + _docs("other", 5, 500)
    drops = Counter()
    out, info = resample(recs, {"code": 0.5, "literature": 0.3, "math": 0.2}, 3.0, 0, drops)
    assert info["missing_domains"] == ["math"]
    assert abs(info["effective_target"]["code"] - 0.625) < 1e-9
    assert drops["domain_not_in_mixture"] == 5


def test_classifier_learns_domains_from_labelled_sources():
    code = [r["text"] for r in load_source("go_src", 300_000, Counter())]
    lit = [r["text"] for r in load_source("bible", 300_000, Counter())]
    clf = DomainClassifier(seed=0).fit(
        code[:-5] + lit[:-5], ["code"] * (len(code) - 5) + ["literature"] * (len(lit) - 5)
    )
    assert clf.predict(code[-5:] + lit[-5:]) == ["code"] * 5 + ["literature"] * 5
    assert clf.accuracy is not None and clf.accuracy > 0.9
