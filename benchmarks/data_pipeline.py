"""Throughput of the whole data stage over >= 100 MB of real text (the tiny recipe with a larger byte cap).

Prints MB/s per step and in total, each step's share of the time, and two baselines measured in the same run:
plain reading (the floor any pipeline pays) and datasketch's own MinHash.update_batch against our numpy
signatures. Target (issue #3): the full corpus prepared in under 5 minutes on 2 cores.

    python benchmarks/data_pipeline.py [--mb-per-source 20] [--workers 0] [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from collections import Counter

from qwenflow.data.dedup import NearDedup
from qwenflow.data.parallel import resolve_workers
from qwenflow.data.prepare import prepare_data
from qwenflow.data.sources import load_source
from qwenflow.recipe import load_recipe


def baseline_read(spec) -> tuple[float, float]:
    t = time.perf_counter()
    n = sum(len(r["text"]) for name in spec.sources for r in load_source(name, spec.max_bytes_per_source, Counter()))
    return n / 1e6, time.perf_counter() - t


def minhash_baselines(texts: list[str]) -> tuple[float, float, float]:
    from datasketch import MinHash

    mb = sum(map(len, texts)) / 1e6
    word = re.compile(r"\w+")
    t = time.perf_counter()
    for text in texts:
        w = word.findall(text.lower())
        m = MinHash(num_perm=128)
        m.update_batch([" ".join(w[i:i + 5]).encode() for i in range(max(1, len(w) - 4))])
    ds = time.perf_counter() - t
    nd = NearDedup()
    t = time.perf_counter()
    for text in texts:
        nd.signature(text)
    ours = time.perf_counter() - t
    return mb, ds, ours


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb-per-source", type=float, default=20.0)  # ~120 MB over the 9 sources
    ap.add_argument("--workers", type=int, default=0, help="data.workers: processes for per-record work (0 = every core)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    recipe = load_recipe("tiny", [f"data.max_bytes_per_source={int(args.mb_per_source * 1e6)}", f"data.workers={args.workers}"])
    workers = resolve_workers(recipe.data.workers)
    print(f"{workers} worker process(es); load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    out = args.out or tempfile.mkdtemp(prefix="qwenflow-data-bench-")

    read_mb, read_s = baseline_read(recipe.data)
    print(f"baseline: reading + decoding the sources: {read_mb:.1f} MB in {read_s:.1f} s = {read_mb / read_s:.1f} MB/s")
    t = time.perf_counter()
    rep = prepare_data(recipe, out, say=lambda s: None)
    total = time.perf_counter() - t
    steps = rep["steps"]
    step_total = sum(s["seconds"] for s in steps.values())
    print(f"\nwhole data stage: {rep['raw_mb']:.1f} MB raw in {total:.1f} s = {rep['raw_mb'] / total:.2f} MB/s "
          f"({total / 60:.1f} min; target < 5 min) -> {rep['corpus_bytes']['train'] / 1e6:.1f} MB train corpus")
    print(f"{'step':<10}{'MB in':>9}{'s':>8}{'MB/s':>9}{'share':>8}")
    for name, s in steps.items():
        print(f"{name:<10}{s['mb']:>9.1f}{s['seconds']:>8.1f}{s['mb_per_s']:>9.2f}{s['seconds'] / total:>8.0%}")
    other = total - step_total
    print(f"{'other':<10}{'':>9}{other:>8.1f}{'':>9}{other / total:>8.0%}")
    for name, sec in rep.get("other_steps", {}).items():
        print(f"  {name:<16}{'':>3}{sec:>8.1f}{'':>9}{sec / total:>8.0%}")
    print(f"stage / plain-read speed: {(rep['raw_mb'] / total) / (read_mb / read_s):.2f}x")

    import pandas as pd

    sample = pd.read_parquet(f"{out}/corpus/train.parquet")["text"].head(400).tolist()
    mb, ds, ours = minhash_baselines(sample)
    print(f"\nMinHash signatures on {mb:.1f} MB: datasketch update_batch {mb / ds:.2f} MB/s, ours (numpy) "
          f"{mb / ours:.2f} MB/s = {ds / ours:.1f}x")
    print(f"drops: {rep['drops']}")
    print(f"datasets in {out}")
    print(f"load average after (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
          "(above the worker count = contended: figures are slower than on an idle machine)")


if __name__ == "__main__":
    main()
