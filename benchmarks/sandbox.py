"""Calls per second of the code sandbox on GRPO-sized programs (a function plus three asserts).

Three ways of running the same programs, measured in this run, interleaved round by round:
- bare: `python -I -S -c PROGRAM` in a subprocess, no isolation at all (the floor any process-per-call pays);
- audit-hook: the previous sandbox (unshare of the network only, a Python audit hook, rlimits), loaded from git
  at --old-commit; skipped with a message when git or that commit is not available;
- bwrap: qwenflow.verifiers.sandbox (bubblewrap namespaces, signed per-test results).
Each is timed one call at a time and through a pool of --workers threads, as GRPO's code reward calls it.

    python benchmarks/sandbox.py [--calls 60] [--workers 2] [--rounds 3] [--old-commit 722d6c0]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from qwenflow.verifiers import sandbox

CODE = "def add(a, b):\n    return a + b\n"
TESTS = ["assert add(2, 3) == 5", "assert add(-1, 1) == 0", "assert add(10, 5) == 15"]


def bare(code: str, tests: list[str]) -> bool:
    return (
        subprocess.run(
            [sys.executable, "-I", "-S", "-c", code + "\n" + "\n".join(tests)], capture_output=True, timeout=10
        ).returncode
        == 0
    )


def load_old(commit: str):
    root = Path(__file__).resolve().parents[1]
    try:
        src = subprocess.run(
            ["git", "-C", str(root), "show", f"{commit}:platform/qwenflow/verifiers/sandbox.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"audit-hook baseline skipped: cannot read it from git at {commit} ({e})")
        return None
    path = Path(tempfile.mkdtemp()) / "old_sandbox.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_sandbox", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_sandbox"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def rate(fn, calls: int, workers: int) -> float:
    t = time.perf_counter()
    if workers == 1:
        ok = [fn() for _ in range(calls)]
    else:
        with ThreadPoolExecutor(workers) as pool:
            ok = list(pool.map(lambda _: fn(), range(calls)))
    took = time.perf_counter() - t
    assert all(ok), "a correct program did not pass"
    return calls / took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--old-commit", default="722d6c0")
    args = ap.parse_args()
    old = load_old(args.old_commit)
    lim = sandbox.Limits(timeout_s=5.0, cpu_s=5, memory_bytes=512 << 20)
    ways = {"bare": lambda: bare(CODE, TESTS), "bwrap": lambda: sandbox.run_python(CODE, lim, tests=TESTS).passed}
    if old is not None:
        old_lim = old.Limits(timeout_s=5.0, cpu_s=5, memory_bytes=512 << 20)
        ways["audit-hook"] = lambda: old.run_python(CODE + "\n" + "\n".join(TESTS), old_lim).passed
    for fn in ways.values():  # warm-up (imports, page cache, the sandbox's one-time probe)
        fn()
    results: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for workers in (1, args.workers):
            for name, fn in ways.items():
                results.setdefault((name, workers), []).append(rate(fn, args.calls, workers))
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"{args.calls} calls x {args.rounds} rounds, median calls/s (load average {load})")
    for workers in (1, args.workers):
        med = {name: statistics.median(results[(name, workers)]) for name in ways}
        line = ", ".join(f"{n} {v:.1f}" for n, v in med.items())
        rel = ", ".join(f"bwrap/{n} {med['bwrap'] / med[n]:.2f}" for n in med if n != "bwrap")
        print(f"workers={workers}: {line}  ({rel})")


if __name__ == "__main__":
    main()
