"""The pre-training corpus: load -> normalise/split -> heuristics -> exact + near dedup -> quality scorer -> domains
-> decontaminate -> train/val split -> resample to the mixture. Every dropped document is counted by reason."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

import xxhash

from .clean import heuristic_reason, normalise, split_long
from .decontam import drop_contaminated
from .dedup import ExactDedup, NearDedup
from .domains import DomainClassifier, byte_mixture, resample
from .parallel import BATCH_BYTES, imap_records, map_batches
from .quality import QualityScorer
from .sources import load_source

log = logging.getLogger("qwenflow.data")
VAL_DOC_CHARS = 20_000  # one huge held-out file would dominate the validation loss (seen when sizing the tiny recipe)


class StepTimer:
    """Seconds and input bytes per step, for the printed report and the benchmark."""

    def __init__(self, say: Callable[[str], None], suffix: str = ""):
        self.say, self.suffix = say, suffix  # suffix: after each printed line, e.g. " (ray)"
        self.steps: dict[str, dict] = {}

    def run(self, name: str, nbytes: int, fn, *args, **kw):
        t = time.perf_counter()
        out = fn(*args, **kw)
        dt = time.perf_counter() - t
        self.steps[name] = {
            "seconds": round(dt, 3),
            "mb": round(nbytes / 1e6, 2),
            "mb_per_s": round(nbytes / 1e6 / max(dt, 1e-9), 2),
        }
        self.say(f"  {name:<12} {nbytes / 1e6:8.1f} MB in {dt:6.1f} s{self.suffix}")
        return out


def _nbytes(records) -> int:
    return sum(len(r["text"]) for r in records)


def _load_one(name: str, max_bytes: int) -> tuple[list[dict], Counter, float] | Exception:
    stats: Counter = Counter()
    t = time.perf_counter()
    try:
        return list(load_source(name, max_bytes, stats)), stats, time.perf_counter() - t
    except Exception as e:  # raised by the parent in source order, so the first broken source is the one reported
        return e


def load_all(spec, drops: Counter, say) -> tuple[list[dict], dict]:
    # One source per worker task, the last-listed first: the recipes list the slowest source (generated math) last.
    names = spec.sources[::-1]
    loaded = map_batches(
        lambda part: [_load_one(n, spec.max_bytes_per_source) for n in part],
        names,
        [BATCH_BYTES] * len(names),
        spec.workers,
        min_items=2,
    )[::-1]
    records, per_source = [], {}
    for name, got in zip(spec.sources, loaded, strict=True):
        if isinstance(got, Exception):
            raise got
        recs, stats, seconds = got
        per_source[name] = {
            "docs": len(recs),
            "mb": round(_nbytes(recs) / 1e6, 2),
            "seconds": round(seconds, 2),
            "skipped": dict(stats),
        }
        drops.update({k: v for k, v in stats.items() if k != "over_byte_cap"})  # unread files are not drops
        say(f"    source {name:<16} {len(recs):6d} docs {per_source[name]['mb']:7.2f} MB")
        records += recs
    return records, per_source


def _clean_one(text: str, spec) -> list[tuple[str, str | None]] | None:
    """(piece, drop reason or None) for each piece of one document; None when normalising leaves nothing."""
    text = normalise(text)
    if not text:
        return None
    return [(piece, heuristic_reason(piece, spec)) for piece in split_long(text, spec.max_chars)]


def clean_and_filter(records: list[dict], spec, drops: Counter) -> list[dict]:
    results = imap_records(partial(_clean_one, spec=spec), [r["text"] for r in records], spec.workers)
    out = []
    for r, pieces in zip(records, results, strict=True):
        if pieces is None:
            drops["empty"] += 1
            continue
        for piece, reason in pieces:
            if reason:
                drops[reason] += 1
            else:
                out.append({**r, "text": piece})
    return out


def dedup(records: list[dict], spec, drops: Counter) -> list[dict]:
    exact, near = ExactDedup(), NearDedup(spec.near_dup_threshold, spec.minhash_perm, seed=spec.seed + 1)
    # Hashes and signatures are per-document work (the pool); the index lookups stay in order, here, overlapping it.
    keys = imap_records(lambda t: (exact.key(t), near.signature(t)), [r["text"] for r in records], spec.workers)
    out = []
    for r, (key, sig) in zip(records, keys, strict=True):
        if exact.seen_key(key):
            drops["exact_duplicate"] += 1
        elif near.seen_signature(sig):
            drops["near_duplicate"] += 1
        else:
            out.append(r)
    return out


def quality_filter(records: list[dict], spec, drops: Counter) -> tuple[list[dict], dict]:
    if not records:
        return records, {}
    scorer = QualityScorer(seed=spec.seed).fit([r["text"] for r in records])
    scores = scorer.score([r["text"] for r in records], spec.workers)
    out = []
    for r, s in zip(records, scores):
        if s < spec.quality_threshold:
            drops["low_quality_score"] += 1
        else:
            out.append(r)
    return out, {"mean_score": float(scores.mean()), "threshold": spec.quality_threshold}


def classify_domains(records: list[dict], spec) -> dict:
    labelled = [r for r in records if r["domain"]]
    unlabelled = [r for r in records if not r["domain"]]
    info: dict[str, float | None] = {"labelled": len(labelled), "classified": len(unlabelled), "holdout_accuracy": None}
    if unlabelled:
        if not labelled:
            for r in unlabelled:
                r["domain"] = "web"  # nothing to learn from: user text without a label is web-like by default
            return info
        clf = DomainClassifier(seed=spec.seed).fit([r["text"] for r in labelled], [r["domain"] for r in labelled])
        info["holdout_accuracy"] = clf.accuracy
        for r, d in zip(unlabelled, clf.predict([r["text"] for r in unlabelled])):
            r["domain"] = d
    return info


def decontaminate(records: list[dict], decon, drops: Counter, hits: Counter, workers: int = 0) -> list[dict]:
    return drop_contaminated(records, imap_records(decon.match, [r["text"] for r in records], workers), drops, hits)


def split_train_val(records: list[dict], spec) -> tuple[list[dict], list[dict]]:
    """Whole documents go to validation by a hash of their text, so the split is stable across runs and machines."""
    cut = int(spec.heldout_fraction * 10_000)
    train, val = [], []
    for r in records:
        if xxhash.xxh64_intdigest(r["text"].encode("utf-8", "surrogatepass"), seed=spec.seed) % 10_000 < cut:
            val.append({**r, "text": r["text"][:VAL_DOC_CHARS]})
        else:
            train.append(r)
    if not val and len(train) > 1:  # tiny corpora: still hold one document out
        val.append(train.pop())
    return train, val


def build_corpus(spec, decon, say=log.info) -> dict:
    """Run every corpus step; returns train/val records and the report (drops, mixture, per-step timings)."""
    drops: Counter = Counter()
    timer = StepTimer(say)
    say("corpus:")
    records, per_source = timer.run("load", 0, load_all, spec, drops, say)
    raw_bytes = _nbytes(records)
    timer.steps["load"].update(
        mb=round(raw_bytes / 1e6, 2), mb_per_s=round(raw_bytes / 1e6 / max(timer.steps["load"]["seconds"], 1e-9), 2)
    )
    if not records:
        raise ValueError(f"no documents from sources {spec.sources}: every source was empty or skipped ({dict(drops)})")
    records = timer.run("clean", raw_bytes, clean_and_filter, records, spec, drops)
    records = timer.run("dedup", _nbytes(records), dedup, records, spec, drops)
    records, quality = timer.run("quality", _nbytes(records), quality_filter, records, spec, drops)
    domains = timer.run("domains", _nbytes(records), classify_domains, records, spec)
    hits: Counter = Counter()
    if decon is not None:
        records = timer.run("decontam", _nbytes(records), decontaminate, records, decon, drops, hits, spec.workers)
    before = byte_mixture(records)
    train, val = split_train_val(records, spec)
    train, mix = timer.run("mix", _nbytes(train), resample, train, spec.mixture, spec.max_upsample, spec.seed, drops)
    if not train:
        raise ValueError(
            f"no training documents survived cleaning (drops: {dict(drops)}); check the sources and thresholds"
        )
    mix.update(before=before, after=byte_mixture(train))
    return {
        "train": train,
        "val": val,
        "drops": dict(drops),
        "per_source": per_source,
        "quality": quality,
        "domains": domains,
        "contamination": dict(hits),
        "mixture": mix,
        "steps": timer.steps,
        "raw_mb": round(raw_bytes / 1e6, 2),
    }
