"""Pipeline overhead of `qwenflow run` on this machine: total wall time, each stage's own time, orchestration
overhead (wall time minus the stages' compute: process start-up, kfp's executor, artifact plumbing, cache keys),
and the time of a resumed run with nothing changed.

The baseline, measured in the same run, is the stages' own compute time; targets (issue #7): whole chain <= 15 min
on 2 cores, overhead <= 5% of the total, resumed run <= 30 s.

    python benchmarks/pipeline_overhead.py                 # the full tiny recipe (the README's main job)
    python benchmarks/pipeline_overhead.py --smoke         # cut step counts (as the end-to-end test does)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from qwenflow.orchestration.smoke import SMOKE  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="tiny")
    p.add_argument("--smoke", action="store_true", help="cut step counts and data (every stage still runs)")
    p.add_argument("--set", action="append", default=[], help="extra recipe overrides")
    p.add_argument("--home", default=None, help="QWENFLOW_HOME for the run (default: a fresh temporary dir)")
    a = p.parse_args()

    os.environ["QWENFLOW_HOME"] = a.home or tempfile.mkdtemp(prefix="qwenflow-bench-")
    from qwenflow.orchestration.local import LocalRun, run_local
    from qwenflow.orchestration.summary import ORDER

    overrides = tuple((SMOKE if a.smoke else []) + a.set)
    run_dir = Path(os.environ["QWENFLOW_HOME"]) / "bench-run"
    print(
        f"recipe {a.recipe}{' (smoke)' if a.smoke else ''}; QWENFLOW_HOME={os.environ['QWENFLOW_HOME']}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )

    first = run_local(LocalRun(recipe=a.recipe, overrides=overrides, run_dir=run_dir, live=False))
    t0 = time.time()
    again = run_local(LocalRun(recipe=a.recipe, overrides=overrides, run_dir=run_dir, live=False))
    resumed_s = time.time() - t0

    print(f"\n{'stage':<15}{'status':>9}{'seconds':>10}")
    for name in ORDER:
        s = first.stages.get(name)
        if s:
            print(f"{name:<15}{s['status']:>9}{s.get('seconds', 0):>10.1f}")
    share = first.overhead_s / first.wall_s
    print(
        f"\ntotal wall time           {first.wall_s:8.1f} s   "
        f"(target <= 900 s: {'met' if first.wall_s <= 900 else 'MISSED'})"
    )
    print(f"stages' own compute       {first.stage_seconds:8.1f} s   (baseline)")
    print(
        f"orchestration overhead    {first.overhead_s:8.1f} s = {100 * share:.1f}% of wall "
        f"(target <= 5%: {'met' if share <= 0.05 else 'MISSED'})"
    )
    print(
        f"resumed run, no change    {resumed_s:8.1f} s   (target <= 30 s: {'met' if resumed_s <= 30 else 'MISSED'}); "
        f"{sum(s['status'] == 'cached' for s in again.stages.values())} stages from the cache, "
        f"overhead per task {again.overhead_s / max(len(again.stages), 1):.2f} s"
    )
    print(f"load average at the end   {os.getloadavg()[0]:.1f} (numbers on a shared machine are contended)")


if __name__ == "__main__":
    sys.exit(main())
