"""The pre-training corpus on Ray Data: the same steps, rules and results as corpus.build_corpus, scaled out.

Record work (load, clean, heuristics, MinHash, quality features, domain labels, decontamination lookups) runs as
Ray Data map tasks over Arrow blocks. The order-dependent global steps are rebuilt so that they give the single
process's answer exactly, from small per-record columns:
- dedup: records are grouped by LSH band (datasketch's own band layout for the threshold); each band bucket yields
  its exact duplicates and candidate pairs; the driver confirms candidates by signature agreement and keeps, in
  corpus order, every record with no kept similar predecessor, which is what sequential LSH inserts keep;
- the quality scorer and domain classifier learn from the same seeded sample positions, fetched by key;
- the mixture plan is resample_plan() over (domain, bytes); the records then move once, in a distributed sort.
Every record carries `key` (its corpus position: source, document, piece) and `drop` (the first reason it was
dropped, or null), so drops by reason are one count at the end and no record disappears uncounted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from datasketch import MinHashLSH

from .corpus import VAL_DOC_CHARS, StepTimer, _clean_one, _load_one
from .dedup import ExactDedup, NearDedup
from .domains import DomainClassifier
from .quality import QualityScorer
from .ray_runtime import Shared, ray_session
from .schemas import DATASETS, stream_parquet

log = logging.getLogger("qwenflow.data")

SRC_BITS, PIECE_BITS = 10, 20  # key = source << 53 | document << 20 | piece
DOC_BITS = 63 - SRC_BITS - PIECE_BITS
RECORD = pa.schema(
    [
        ("key", pa.int64()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("domain", pa.string()),
        ("license", pa.string()),
        ("drop", pa.string()),
    ]
)
OUT_COLUMNS = ["text", "source", "domain", "license"]


def _utf8_len(texts: list[str]) -> np.ndarray:
    return np.fromiter((len(t.encode("utf-8", "surrogatepass")) for t in texts), dtype=np.int64, count=len(texts))


def _kept(t: pa.Table) -> np.ndarray:
    return t.column("drop").is_null().to_numpy(zero_copy_only=False)


def _with_drops(t: pa.Table, reasons: list[str | None]) -> pa.Table:
    """Set `drop` where it is still null; dropped rows lose their text (the count is what is kept of them)."""
    drop = [old if old is not None else new for old, new in zip(t.column("drop").to_pylist(), reasons)]
    text = [None if d is not None else x for d, x in zip(drop, t.column("text").to_pylist())]
    t = t.set_column(t.schema.get_field_index("drop"), "drop", pa.array(drop, pa.string()))
    return t.set_column(t.schema.get_field_index("text"), "text", pa.array(text, pa.string()))


# ---- record work (runs in Ray tasks) --------------------------------------------------------------------------


def _load_task(src: int, name: str, max_bytes: int):
    got = _load_one(name, max_bytes)
    if isinstance(got, Exception):
        return None, got
    recs, stats, seconds = got
    if len(recs) >= 1 << DOC_BITS:
        return None, ValueError(
            f"source {name!r}: {len(recs)} documents, more than the {1 << DOC_BITS} one source may hold"
        )
    keys = (np.int64(src) << np.int64(DOC_BITS + PIECE_BITS)) + (np.arange(len(recs), dtype=np.int64) << PIECE_BITS)
    cols = {"key": keys, **{c: [r[c] for r in recs] for c in OUT_COLUMNS}, "drop": [None] * len(recs)}
    info = {"docs": len(recs), "chars": sum(len(r["text"]) for r in recs), "stats": dict(stats), "seconds": seconds}
    return pa.table(cols, schema=RECORD), info


def _clean_block(t: pa.Table, spec: Shared) -> pa.Table:
    data_spec = spec.get()
    rows: dict[str, list[Any]] = {c: [] for c in RECORD.names}
    for key, text, src, dom, lic in zip(*(t.column(c).to_pylist() for c in ["key"] + OUT_COLUMNS)):
        pieces: Sequence[tuple[str | None, str | None]] | None = _clean_one(text, data_spec)
        if pieces is None:
            pieces = [(None, "empty")]
        if len(pieces) >= 1 << PIECE_BITS:
            raise ValueError(f"a document of source {src!r} splits into {len(pieces)} pieces; raise data.max_chars")
        for i, (piece, reason) in enumerate(pieces):
            for c, v in zip(RECORD.names, (key + i, None if reason else piece, src, dom, lic, reason)):
                rows[c].append(v)
    return pa.table(rows, schema=RECORD)


def _signature_block(t: pa.Table, near: Shared) -> pa.Table:
    minhash = near.get()
    kept = _kept(t)
    texts = t.column("text").to_pylist()
    exact = np.zeros(len(texts), dtype=np.uint64)
    sigs = np.zeros((len(texts), minhash.num_perm), dtype=np.uint64)
    for i in np.flatnonzero(kept):
        exact[i] = ExactDedup.key(texts[i])
        sigs[i] = minhash.signature(texts[i])
    t = t.append_column("exact", pa.array(exact))
    return t.append_column(
        "sig",
        pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(8 * minhash.num_perm), len(texts), [None, pa.py_buffer(sigs.tobytes())]
        ),
    )


def _band_partitions(t: pa.Table, bands: list[tuple[int, int]], parts: int):
    """The map side of the band shuffle: a block's band rows split into `parts` by band hash."""
    rows = _band_rows(t, bands)
    which = rows["band"].view(np.uint64) % np.uint64(parts)
    out = [{k: v[which == p] for k, v in rows.items()} for p in range(parts)]
    return out if parts > 1 else out[0]


def _bucket_partition(*parts: dict) -> dict:
    """The reduce side: one partition's band rows, from every block, resolved into pairs."""
    rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return _buckets(rows)


def _band_rows(t: pa.Table, bands: list[tuple[int, int]]) -> dict:
    """One row per (record, LSH band): a hash of the band's values, the band's number, the record's key and exact
    hash. Dropped records have no bands."""
    kept = np.flatnonzero(_kept(t))
    width = t.schema.field("sig").type.byte_width // 8
    sigs = np.frombuffer(t.column("sig").combine_chunks().buffers()[1], dtype=np.uint64).reshape(-1, width)[kept]
    out: dict[str, list[np.ndarray]] = {"band": [], "band_no": [], "key": [], "exact": []}
    keys, exact = t.column("key").to_numpy()[kept], t.column("exact").to_numpy()[kept]
    for b, (lo, hi) in enumerate(bands):
        raw = np.ascontiguousarray(sigs[:, lo:hi])
        out["band"].append(
            np.fromiter(
                (xxhash.xxh3_64_intdigest(row.tobytes(), seed=b) for row in raw), dtype=np.uint64, count=len(raw)
            ).view(np.int64)
        )
        out["band_no"].append(np.full(len(raw), b, dtype=np.int16))
        out["key"].append(keys)
        out["exact"].append(exact)
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def _buckets(t: dict) -> dict:
    """Every band bucket of a hash partition of band rows (a bucket never spans partitions), as pairs
    (earlier key, later key, kind): kind 0 = an exact duplicate (found in band 0 only: copies share every band),
    kind 1 = a near-duplicate candidate among the rest. Singleton buckets, nearly all of them, cost one sort."""
    band, key, exact, band_no = t["band"], t["key"], t["exact"], t["band_no"]
    order = np.lexsort((key, band))
    band, key, exact, band_no = band[order], key[order], exact[order], band_no[order]
    edge = np.flatnonzero(np.diff(band)) + 1
    starts, ends = np.r_[0, edge], np.r_[edge, len(band)]
    a, b, kind = [], [], []
    for lo, hi in zip(starts[ends - starts > 1].tolist(), ends[ends - starts > 1].tolist()):
        first: dict[int, int] = {}
        rest = []
        for k, e in zip(key[lo:hi].tolist(), exact[lo:hi].tolist()):
            if e in first:
                if band_no[lo] == 0:
                    a.append(first[e])
                    b.append(k)
                    kind.append(0)
            else:
                first[e] = k
                rest.append(k)
        for j in range(1, len(rest)):  # quadratic in a bucket's size: buckets hold near-copies only
            for i in range(j):
                a.append(rest[i])
                b.append(rest[j])
                kind.append(1)
    return {"a": np.array(a, dtype=np.int64), "b": np.array(b, dtype=np.int64), "kind": np.array(kind, dtype=np.int8)}


def _mark_block(t: pa.Table, keys: Shared, reason: str) -> pa.Table:
    hit = np.isin(t.column("key").to_numpy(), keys.get())
    return _with_drops(t, [reason if h else None for h in hit])


def _quality_block(t: pa.Table, scorer: Shared, threshold: float) -> pa.Table:
    model = scorer.get()
    kept = np.flatnonzero(_kept(t))
    texts = t.column("text").to_pylist()
    scores = np.full(len(texts), np.nan)
    if len(kept):
        scores[kept] = model.score([texts[i] for i in kept], workers=1)
    t = _with_drops(t, ["low_quality_score" if s < threshold else None for s in scores])
    return t.append_column("score", pa.array(scores))


def _domain_block(t: pa.Table, clf: Shared) -> pa.Table:
    classifier = clf.get()
    doms = t.column("domain").to_pylist()
    todo = [i for i, (d, k) in enumerate(zip(doms, _kept(t))) if k and not d]
    if todo:
        texts = t.column("text").to_pylist()
        guesses = classifier.predict([texts[i] for i in todo]) if classifier is not None else ["web"] * len(todo)
        for i, d in zip(todo, guesses):
            doms[i] = d
    return t.set_column(t.schema.get_field_index("domain"), "domain", pa.array(doms, pa.string()))


def _decontam_block(t: pa.Table, decon: Shared) -> pa.Table:
    index = decon.get()
    texts, kept = t.column("text").to_pylist(), _kept(t)
    hits = [index.match(x) if k else None for x, k in zip(texts, kept)]
    t = _with_drops(t, ["contaminated" if h else None for h in hits])
    return t.append_column("hit", pa.array(hits, pa.string()))


def _split_block(t: pa.Table, spec: Shared) -> pa.Table:
    """Per-record columns for the global steps: UTF-8 bytes and whether the record is held out."""
    data_spec = spec.get()
    cut = int(data_spec.heldout_fraction * 10_000)
    texts, kept = t.column("text").to_pylist(), _kept(t)
    val = [
        bool(k) and xxhash.xxh64_intdigest(x.encode("utf-8", "surrogatepass"), seed=data_spec.seed) % 10_000 < cut
        for x, k in zip(texts, kept)
    ]
    t = t.append_column("nbytes", pa.array(_utf8_len([x if k else "" for x, k in zip(texts, kept)])))
    return t.append_column("val", pa.array(val))


def _val_block(t: pa.Table) -> pa.Table:
    """The held-out records, each cut to VAL_DOC_CHARS characters (as the local split does)."""
    t = t.filter(pc.and_(t.column("val"), pc.is_null(t.column("drop")))).select(OUT_COLUMNS)
    return t.set_column(0, "text", pa.array([x[:VAL_DOC_CHARS] for x in t.column("text").to_pylist()], pa.string()))


def _only_kept(t: pa.Table) -> pa.Table:
    return t.filter(pc.is_null(t.column("drop")))


def _place_partitions(t: pa.Table, out_keys: Shared, bounds: list[int]):
    """The map side of the mix: a block's training records, once per place they have in the mixed corpus,
    split into the output's position ranges."""
    placed = _place_block(t, out_keys)
    pos = placed.column("pos").to_numpy()
    which = np.searchsorted(np.asarray(bounds[1:-1]), pos, side="right")
    out = [placed.filter(pa.array(which == p)) for p in range(len(bounds) - 1)]
    return out if len(out) > 1 else out[0]


def _sorted_partition(*tables: pa.Table) -> pa.Table:
    """The reduce side: one position range of the mixed corpus, in order."""
    t = pa.concat_tables(tables)
    return t.take(pc.sort_indices(t.column("pos"))).select(OUT_COLUMNS)


def _place_block(t: pa.Table, out_keys: Shared) -> pa.Table:
    """Each kept training record once per place it has in the mixed corpus, with that place (`pos`)."""
    keys_sorted, pos_sorted = out_keys.get()
    mine = t.filter(pc.and_(pc.invert(t.column("val")), pc.is_null(t.column("drop"))))
    k = mine.column("key").to_numpy()
    lo, hi = np.searchsorted(keys_sorted, k, "left"), np.searchsorted(keys_sorted, k, "right")
    take = np.repeat(np.arange(len(k)), hi - lo)
    pos = pos_sorted[np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(take) else np.zeros(0, np.int64)]
    out = mine.select(OUT_COLUMNS).take(pa.array(take, pa.int64()))
    return out.append_column("pos", pa.array(pos, pa.int64()))


# ---- the driver ---------------------------------------------------------------------------------------------


# Small reads of a materialised dataset run as one plain Ray task per block: a Ray Data execution costs ~0.2 s of
# planning each, which is most of a small step.


def _per_block(ds, fn, *args) -> list:
    # lazy: imports ray (640 ms)
    import ray

    task = ray.remote(fn)
    return ray.get([task.remote(ref, *args) for ref in ds.to_arrow_refs()])


def _col_task(t: pa.Table, name: str, kept_only: bool):
    if kept_only:
        t = _only_kept(t)
    return t.column(name).to_numpy(zero_copy_only=False)


def _column(ds, name: str, kept_only: bool = True) -> np.ndarray:
    """One small per-record column (of the kept records), in corpus order, on the driver."""
    parts = _per_block(ds, _col_task, name, kept_only)
    return np.concatenate(parts) if parts else np.zeros(0)


def _fetch_task(t: pa.Table, want: np.ndarray, column: str) -> pa.Table:
    return t.filter(pa.array(np.isin(t.column("key").to_numpy(), want))).select(["key", column])


def _fetch(ds, keys: list[int], column: str = "text") -> list:
    """`column` of the records with these keys, in the order asked."""
    want = np.unique(np.asarray(keys, dtype=np.int64))
    table = pa.concat_tables(_per_block(ds, _fetch_task, want, column))
    by = dict(zip(table.column("key").to_pylist(), table.column(column).to_pylist()))
    return [by[k] for k in keys]


def _chars_task(t: pa.Table) -> int:
    return int(pc.sum(pc.utf8_length(t.column("text"))).as_py() or 0)


def _sum_chars(ds) -> int:
    return sum(_per_block(ds, _chars_task))


def build_corpus_ray(spec, decon, out_dir: Path, say: Callable[[str], None] = log.info) -> dict:
    """Run every corpus step on Ray Data and write out_dir/{train,val}.parquet; returns what build_corpus returns,
    with row and byte counts instead of the record lists."""
    with ray_session(spec.workers, spec.ray_object_store_mb) as ray:
        # lazy: imports ray, pyarrow (seconds to import)
        import ray.data as rd

        # Each step is materialised before the next, so its time and MB/s are its own (as the local path reports).
        steps = StepTimer(say, suffix=" (ray)")
        say(f"corpus (Ray Data, {int(ray.cluster_resources().get('CPU', 0))} CPUs):")
        shared_spec = Shared(spec)
        drops: Counter = Counter()

        # ---- load: one task per source, the slowest (listed last) first, as the local path does
        def load():
            task = ray.remote(num_returns=2)(_load_task)
            refs = {i: task.remote(i, n, spec.max_bytes_per_source) for i, n in reversed(list(enumerate(spec.sources)))}
            tables, per_source = [], {}
            for i, name in enumerate(spec.sources):
                table_ref, info_ref = refs[i]
                info = ray.get(info_ref)
                if isinstance(info, Exception):
                    raise info
                per_source[name] = {
                    "docs": info["docs"],
                    "mb": round(info["chars"] / 1e6, 2),
                    "seconds": round(info["seconds"], 2),
                    "skipped": info["stats"],
                }
                drops.update({k: v for k, v in info["stats"].items() if k != "over_byte_cap"})
                say(f"    source {name:<16} {info['docs']:6d} docs {per_source[name]['mb']:7.2f} MB")
                if info["docs"]:
                    tables.append(table_ref)
                raw[0] += info["chars"]
            return tables, per_source

        raw = [0]
        tables, per_source = steps.run("load", 0, load)
        raw_bytes = raw[0]
        steps.steps["load"].update(
            mb=round(raw_bytes / 1e6, 2), mb_per_s=round(raw_bytes / 1e6 / max(steps.steps["load"]["seconds"], 1e-9), 2)
        )
        if not tables:
            raise ValueError(
                f"no documents from sources {spec.sources}: every source was empty or skipped ({dict(drops)})"
            )
        ds = rd.from_arrow_refs(tables)

        ds = steps.run(
            "clean",
            raw_bytes,
            # ray's annotation of map_batches has no place for the fn_kwargs parameters of the batch function
            lambda: ds.map_batches(
                _clean_block,  # type: ignore[arg-type]
                batch_format="pyarrow",
                fn_kwargs={"spec": shared_spec},
            ).materialize(),
        )
        ds = steps.run("dedup", _sum_chars(ds), lambda: _dedup(ray, ds, spec))
        ds, quality = steps.run("quality", _sum_chars(ds), lambda: _quality(ds, spec))
        ds, domains = steps.run("domains", _sum_chars(ds), lambda: _domains(ds, spec))
        hits: Counter = Counter()
        if decon is not None:
            ds = steps.run(
                "decontam",
                _sum_chars(ds),
                lambda: ds.map_batches(
                    _decontam_block, batch_format="pyarrow", fn_kwargs={"decon": Shared(decon)}
                ).materialize(),
            )
            hits.update(h for h in _column(ds, "hit", kept_only=False) if h)
        ds = ds.map_batches(_split_block, batch_format="pyarrow", fn_kwargs={"spec": shared_spec}).materialize()
        drops.update(Counter(d for d in _column(ds, "drop", kept_only=False) if d is not None))

        # ---- split and mix: planned on the driver from (key, domain, bytes, held out), records moved once
        from .domains import resample_plan

        keys, doms, nbytes, val = (_column(ds, c) for c in ("key", "domain", "nbytes", "val"))
        val = val.astype(bool)
        if not val.any() and len(keys) > 1:  # tiny corpora: still hold one document out (the last training one)
            val[-1] = True
            ds = ds.map_batches(
                lambda t: t.set_column(
                    t.schema.get_field_index("val"),
                    "val",
                    pc.or_(t.column("val"), pc.equal(t.column("key"), int(keys[-1]))),
                ),
                batch_format="pyarrow",
            ).materialize()
        before = _shares(doms, nbytes)
        train_bytes = int(nbytes[~val].sum())

        def mix():
            positions, info = resample_plan(
                list(doms[~val]), nbytes[~val].tolist(), spec.mixture, spec.max_upsample, spec.seed, drops
            )
            out_keys = keys[~val][np.asarray(positions, dtype=np.int64)]
            order = np.argsort(out_keys, kind="stable")
            shared = Shared((out_keys[order], order.astype(np.int64)))
            # Position ranges of ~16k rows, sorted by Ray tasks (a map/reduce like the dedup's): the driver then
            # streams them to Parquet in order, one range in memory at a time.
            n_parts = max(1, -(-len(out_keys) // 16384))
            bounds = np.linspace(0, len(out_keys), n_parts + 1).round().astype(int).tolist()
            split = ray.remote(num_returns=n_parts)(_place_partitions)
            mapped = [split.remote(ref, shared, bounds) for ref in ds.to_arrow_refs()]
            mapped = [m if n_parts > 1 else [m] for m in mapped]
            reduce = ray.remote(_sorted_partition)
            return [reduce.remote(*[m[p] for m in mapped]) for p in range(n_parts)], out_keys, info

        train_ds, out_keys, mixinfo = steps.run("mix", train_bytes, mix)
        if not len(out_keys):
            raise ValueError(
                f"no training documents survived cleaning (drops: {dict(drops)}); check the sources and thresholds"
            )
        key_dom = dict(zip(keys.tolist(), doms.tolist()))
        key_bytes = dict(zip(keys.tolist(), nbytes.tolist()))
        mixinfo.update(
            before=before,
            after=_shares([key_dom[k] for k in out_keys.tolist()], [key_bytes[k] for k in out_keys.tolist()]),
        )

        val_ds = ds.map_batches(_val_block, batch_format="pyarrow")
        counts = {
            "train": stream_parquet(
                (ray.get(r) for r in train_ds), out_dir / "train.parquet", DATASETS["corpus"].schema
            ),
            "val": stream_parquet(_batches(val_ds), out_dir / "val.parquet", DATASETS["corpus"].schema),
        }
    return {
        "rows": {k: v[0] for k, v in counts.items()},
        "bytes": {k: v[1] for k, v in counts.items()},
        "drops": dict(drops),
        "per_source": per_source,
        "quality": quality,
        "domains": domains,
        "contamination": dict(hits),
        "mixture": mixinfo,
        "steps": steps.steps,
        "raw_mb": round(raw_bytes / 1e6, 2),
        "engine": "ray",
    }


def _batches(ds):
    for b in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        if b.num_rows:
            yield b


def _shares(doms, nbytes) -> dict[str, float]:
    sizes: Counter = Counter()
    for d, n in zip(doms, nbytes):
        sizes[d] += int(n)
    total = sum(sizes.values()) or 1
    return {d: sizes[d] / total for d in sorted(sizes)}


def _dedup(ray, ds, spec):
    """Exact + near duplicates by LSH band buckets, resolved in corpus order (see the module docstring)."""

    near = NearDedup(spec.near_dup_threshold, spec.minhash_perm, seed=spec.seed + 1)
    lsh = MinHashLSH(threshold=spec.near_dup_threshold, num_perm=spec.minhash_perm)  # its band layout, as local
    bands = [(i * lsh.r, (i + 1) * lsh.r) for i in range(lsh.b)]
    ds = ds.map_batches(_signature_block, batch_format="pyarrow", fn_kwargs={"near": Shared(near)}).materialize()
    parts = max(1, int(ray.cluster_resources().get("CPU", 1)))
    # A map/reduce on Ray tasks, hash-partitioned by band: Ray Data's own repartition(keys=) starts aggregator
    # actors, 12 s for 40k band rows on 2 cores here, against well under a second for these tasks.
    split = ray.remote(num_returns=parts)(_band_partitions)
    mapped = [split.remote(ref, bands, parts) for ref in ds.to_arrow_refs()]
    mapped = [m if parts > 1 else [m] for m in mapped]
    reduce = ray.remote(_bucket_partition)
    a, b, kind = [], [], []
    for got in ray.get([reduce.remote(*[m[p] for m in mapped]) for p in range(parts)]):
        a.append(got["a"]), b.append(got["b"]), kind.append(got["kind"])
    a, b, kind = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (a, b, kind))
    exact_dups = np.unique(b[kind == 0])
    cand = (
        np.unique(np.stack([a[kind == 1], b[kind == 1]], 1), axis=0)
        if (kind == 1).any()
        else np.zeros((0, 2), np.int64)
    )
    near_dups = np.zeros(0, np.int64)
    if len(cand):  # confirm candidates by their signatures' agreement, then keep in corpus order
        involved = np.unique(cand).tolist()
        sig = dict(zip(involved, (np.frombuffer(s, dtype=np.uint64) for s in _fetch(ds, involved, "sig"))))
        preds: dict[int, list[int]] = {}
        for i, j in cand.tolist():
            if np.mean(sig[i] == sig[j]) >= near.threshold:
                preds.setdefault(j, []).append(i)
        dropped: set[int] = set()
        for j in sorted(preds):  # a record is dropped when a kept earlier record is similar to it
            if any(i not in dropped for i in preds[j]):
                dropped.add(j)
        near_dups = np.array(sorted(dropped), dtype=np.int64)
    ds = ds.drop_columns(["sig", "exact"])
    ds = ds.map_batches(
        _mark_block, batch_format="pyarrow", fn_kwargs={"keys": Shared(exact_dups), "reason": "exact_duplicate"}
    )
    return ds.map_batches(
        _mark_block, batch_format="pyarrow", fn_kwargs={"keys": Shared(near_dups), "reason": "near_duplicate"}
    ).materialize()


def _quality(ds, spec):

    keys = _column(ds, "key")
    if not len(keys):
        return ds, {}
    scorer = QualityScorer(seed=spec.seed)
    positions, rng = scorer.sample_positions(len(keys))
    scorer.fit_sample(_fetch(ds, keys[positions].tolist()), rng)
    ds = ds.map_batches(
        _quality_block,
        batch_format="pyarrow",
        fn_kwargs={"scorer": Shared(scorer), "threshold": spec.quality_threshold},
    ).materialize()
    scores = _column(ds, "score", kept_only=False)
    scores = scores[~np.isnan(scores)]  # every record that reached the scorer, in corpus order
    return ds.drop_columns(["score"]), {"mean_score": float(scores.mean()), "threshold": spec.quality_threshold}


def _domains(ds, spec):

    keys, doms = _column(ds, "key"), _column(ds, "domain")
    labelled = np.array([bool(d) for d in doms], dtype=bool)
    info = {"labelled": int(labelled.sum()), "classified": int((~labelled).sum()), "holdout_accuracy": None}
    if labelled.all():
        return ds, info
    clf = None
    if labelled.any():  # else: nothing to learn from; user text without a label is web-like by default
        clf = DomainClassifier(seed=spec.seed)
        train, held = clf.sample_positions(list(doms[labelled]))
        lkeys = keys[labelled]
        texts = _fetch(ds, [int(lkeys[i]) for i, _ in train + held])
        clf.fit_sample(
            [(x, d) for x, (_, d) in zip(texts, train)], [(x, d) for x, (_, d) in zip(texts[len(train) :], held)]
        )
        info["holdout_accuracy"] = clf.accuracy
    return ds.map_batches(_domain_block, batch_format="pyarrow", fn_kwargs={"clf": Shared(clf)}).materialize(), info
