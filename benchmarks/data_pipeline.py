"""Throughput of the data stage's corpus steps over >= 100 MB of real text (the tiny recipe with a larger byte cap),
on both engines, on the same input, in one run:

- local (the single process with its fork pool) and Ray Data (a local Ray instance) each with 1 and 2 workers;
  every configuration runs in a fresh interpreter, and its corpus files are checked to be identical to local's;
- MB/s of raw text through load -> clean -> dedup -> quality -> domains -> decontaminate -> mix -> write, Ray's
  start-up shown apart (a RayJob's cluster is up before the stage starts) and included;
- the per-worker scaling of each engine and Ray at N workers against the local path at N workers;
- baselines in the same run: plain reading of the sources, and datasketch's MinHash.update_batch against our
  numpy signatures.

    python benchmarks/data_pipeline.py [--mb-per-source 20] [--workers 1 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from qwenflow.data.dedup import NearDedup
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
        m.update_batch([" ".join(w[i : i + 5]).encode() for i in range(max(1, len(w) - 4))])
    ds = time.perf_counter() - t
    nd = NearDedup()
    t = time.perf_counter()
    for text in texts:
        nd.signature(text)
    ours = time.perf_counter() - t
    return mb, ds, ours


def run_one(engine: str, workers: int, mb_per_source: float, out: str) -> dict:
    """One configuration, in this (fresh) process: the corpus steps and their write, timed; Ray's start apart."""
    from qwenflow.artifacts import sha256_file
    from qwenflow.data.decontam import Decontaminator, benchmark_texts
    from qwenflow.data.schemas import DATASETS, stream_parquet

    spec = load_recipe(
        "tiny",
        [f"data.max_bytes_per_source={int(mb_per_source * 1e6)}", f"data.workers={workers}", f"data.engine={engine}"],
    ).data
    decon = Decontaminator(benchmark_texts(), spec.decontam_min_tokens, spec.decontam_min_ratio)  # both pay it alike
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    start_s = 0.0
    if engine == "ray":
        import ray

        t = time.perf_counter()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        start_s = time.perf_counter() - t
    t = time.perf_counter()
    if engine == "ray":
        from qwenflow.data.ray_corpus import build_corpus_ray

        corpus = build_corpus_ray(spec, decon, out_dir, say=lambda s: None)
    else:
        import pyarrow as pa

        from qwenflow.data.corpus import build_corpus

        corpus = build_corpus(spec, decon, say=lambda s: None)
        for split in ("train", "val"):
            stream_parquet(
                [pa.Table.from_pylist(corpus[split], schema=DATASETS["corpus"].schema)],
                out_dir / f"{split}.parquet",
                DATASETS["corpus"].schema,
            )
    seconds = time.perf_counter() - t
    return {
        "engine": engine,
        "workers": workers,
        "raw_mb": corpus["raw_mb"],
        "seconds": seconds,
        "start_s": start_s,
        "steps": corpus["steps"],
        "drops": corpus["drops"],
        "files": {s: sha256_file(out_dir / f"{s}.parquet") for s in ("train", "val")},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb-per-source", type=float, default=20.0)  # ~120 MB over the 9 sources
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    ap.add_argument("--out", default=None)
    ap.add_argument("--one", nargs=2, metavar=("ENGINE", "WORKERS"), help=argparse.SUPPRESS)  # child process
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="qwenflow-data-bench-")
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.mb_per_source, out)))
        return

    print(f"{os.cpu_count()} cores; load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    spec = load_recipe("tiny", [f"data.max_bytes_per_source={int(args.mb_per_source * 1e6)}"]).data
    read_mb, read_s = baseline_read(spec)
    print(f"baseline: reading + decoding the sources: {read_mb:.1f} MB in {read_s:.1f} s = {read_mb / read_s:.1f} MB/s")

    results = {}
    for engine in ("local", "ray"):
        for w in args.workers:
            cmd = [
                sys.executable,
                __file__,
                "--mb-per-source",
                str(args.mb_per_source),
                "--out",
                f"{out}/{engine}-{w}",
                "--one",
                engine,
                str(w),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode:
                raise SystemExit(f"{engine} x{w} failed:\n{res.stderr[-3000:]}")
            results[(engine, w)] = r = json.loads(res.stdout.strip().splitlines()[-1])
            print(
                f"  {engine:<5} x{w}: {r['raw_mb']:.1f} MB in {r['seconds']:.1f} s"
                + (f" (+ {r['start_s']:.1f} s Ray start)" if engine == "ray" else ""),
                flush=True,
            )

    ref = results[("local", args.workers[0])]
    same = all(r["files"] == ref["files"] and r["drops"] == ref["drops"] for r in results.values())
    print(f"\ncorpus files and drops identical in every configuration: {same}")
    print(f"{'engine':<8}{'workers':>8}{'MB/s':>8}{'MB/s incl. start':>18}{'vs local same workers':>23}")
    for (engine, w), r in results.items():
        mbs = r["raw_mb"] / r["seconds"]
        incl = r["raw_mb"] / (r["seconds"] + r["start_s"])
        local = results[("local", w)]["raw_mb"] / results[("local", w)]["seconds"]
        print(f"{engine:<8}{w:>8}{mbs:>8.2f}{incl:>18.2f}{mbs / local:>22.2f}x")
    if len(args.workers) > 1:
        lo, hi = args.workers[0], args.workers[-1]
        for engine in ("local", "ray"):
            a, b = results[(engine, lo)], results[(engine, hi)]
            scale = a["seconds"] / b["seconds"]
            print(
                f"{engine} scaling {lo} -> {hi} workers: {scale:.2f}x ({scale / (hi / lo):.0%} of linear, "
                f"{scale ** (1 / max(1, (hi - lo))):.2f}x per added worker)"
            )
        ray_hi, local_hi = results[("ray", hi)], results[("local", hi)]
        print(
            f"ray x{hi} / local x{hi}: {local_hi['seconds'] / ray_hi['seconds']:.2f}x "
            f"({local_hi['seconds'] / (ray_hi['seconds'] + ray_hi['start_s']):.2f}x with Ray's start-up)"
        )
    print(f"\nper step, seconds ({', '.join(f'{e} x{w}' for e, w in results)}):")
    for step in ref["steps"]:
        print(
            f"  {step:<10}" + "".join(f"{r['steps'].get(step, {}).get('seconds', 0):>9.1f}" for r in results.values())
        )

    import pandas as pd

    sample = pd.read_parquet(f"{out}/local-{args.workers[0]}/train.parquet")["text"].head(400).tolist()
    mb, ds, ours = minhash_baselines(sample)
    print(
        f"\nMinHash signatures on {mb:.1f} MB: datasketch update_batch {mb / ds:.2f} MB/s, ours (numpy) "
        f"{mb / ours:.2f} MB/s = {ds / ours:.1f}x"
    )
    print(f"outputs in {out}")
    print(
        f"load average after (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
        "(above the worker count = contended: figures are slower than on an idle machine)"
    )


if __name__ == "__main__":
    main()
