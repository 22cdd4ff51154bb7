"""Per-rank memory of building, saving and loading the qwen2.5-0.5b architecture (494M parameters, 1.98 GB fp32)
under ZeRO-3 over N CPU processes, against the whole model's size.

    python benchmarks/sharded_memory.py [--nproc 2]

Prints, per rank and phase, the heap (RssAnon) and resident growth: peak (sampled every 10 ms) and afterwards.
Measured on 2 AVX2 cores (contended), 2 processes: build peak 0.92x / 1.01x the model, 0.66x / 0.74x afterwards.
DeepSpeed's zero.Init broadcasts every parameter whole from rank 0 before partitioning it (the tied 151,936 x 896
embedding is 0.28x of the model), and glibc keeps freed blocks, so the peak stays near 1x; the partitions themselves
are initialised and loaded slice by slice (qwenflow.models.sharded). The load figure reuses the heap the built
model freed, so read it as an upper bound on new memory, not as the load's footprint.
"""

import gc
import json
import sys
import threading
import time
from pathlib import Path

import torch

from qwenflow import dist
from qwenflow.models import io
from qwenflow.recipe import load_recipe


def rss() -> dict[str, int]:
    """Anonymous (heap) and total resident bytes of this process."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kb = lambda k: int(fields[k].split()[0]) * 1024  # noqa: E731
    return {"anon": kb("RssAnon"), "total": kb("VmRSS")}


class Peak:
    def __init__(self):
        self.base, self.peak, self.stop = rss(), rss(), False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            now = rss()
            self.peak = {k: max(self.peak[k], now[k]) for k in now}
            time.sleep(0.01)

    def growth(self) -> dict[str, int]:
        self.stop = True
        self.thread.join()
        now = rss()
        return {**{k: max(self.peak[k], now[k]) - self.base[k] for k in now}, "steady": now["anon"] - self.base["anon"]}


if "--worker" not in sys.argv:
    import argparse
    import subprocess
    import tempfile

    ap = argparse.ArgumentParser()
    ap.add_argument("--nproc", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={a.nproc}",
                __file__,
                "--worker",
                tmp,
            ],
            check=True,
            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
        )
        for f in sorted(Path(tmp).glob("rank*.json")):
            r = json.loads(f.read_text())
            full = r["full_bytes"]
            for phase in ("build", "load"):
                g = r[phase]
                print(
                    f"{f.stem} {phase}: heap peak +{g['anon'] / 1e9:.2f} GB = {g['anon'] / full:.2f}x the "
                    f"{full / 1e9:.2f} GB model; resident peak {g['total'] / full:.2f}x; afterwards "
                    f"{g['steady'] / full:.2f}x; partition {r['shard_bytes'] / full:.2f}x"
                )
    sys.exit(0)
out = Path(sys.argv[sys.argv.index("--worker") + 1])
recipe = load_recipe("qwen2.5-0.5b", ["pretrain.distributed.strategy=zero3"])
spec, strategy = recipe.model, recipe.pretrain.distributed
torch.set_num_threads(1)
io._init_deepspeed_dist()  # the process group before measuring
gc.collect()
p = Peak()
model = io.build_causal_lm(spec, distributed=strategy, seed=0)
build = p.growth()
full_bytes = sum(getattr(t, "ds_numel", t.numel()) * t.element_size() for t in model.parameters())
io.save(model, out / "model")
del model
gc.collect()
if dist.world_size() > 1:
    torch.distributed.barrier()
p = Peak()
model = io.load_causal_lm(out / "model", distributed=strategy)
load = p.growth()
shard = sum(t.ds_tensor.numel() * t.element_size() for t in model.parameters())  # this rank's partition
(out / f"rank{dist.rank()}.json").write_text(
    json.dumps(
        {"build": build, "load": load, "full_bytes": full_bytes, "shard_bytes": shard, "world": dist.world_size()}
    )
)
