"""benchmarks/gpu_stages.py --smoke: the GPU benchmark's whole path (inputs, each stage through `qwenflow train STAGE
--nproc 1` under the probe, the table and its JSON) on CPU with the tiny model, so the one GPU run it is prepared
for does not fail on something a CPU could have shown."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_stages.py"
STAGES = ("pretrain", "sft", "dpo", "grpo")


def _module():
    spec = importlib.util.spec_from_file_location("gpu_stages", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_steady_rate_leaves_out_the_first_step():
    steady = _module().steady
    steps = [
        {"t": 10.0, "tokens": 999, "token_seq": 999 * 64},  # warm-up step: neither its time nor its tokens count
        {"t": 12.0, "tokens": 100, "token_seq": 100 * 64},
        {"t": 14.0, "tokens": 300, "token_seq": 300 * 128},
    ]
    tps, seq, seconds, tokens = steady(steps)
    assert seconds == 4.0 and tokens == 400 and tps == 100.0
    assert seq == pytest.approx((100 * 64 + 300 * 128) / 400)
    assert all(math.isnan(x) for x in steady(steps[:1]))


def test_out_of_memory_halves_the_micro_batch_until_it_fits():
    mod, seen = _module(), []

    def attempt(sets, timeout):
        seen.append(sets[-1])
        return {"stage": "pretrain", "sets": sets, "out_of_memory": True, "error": "CUDA out of memory"}

    row = mod.with_retries("pretrain", ["pretrain.max_steps=3"], 4, attempt, time.perf_counter() + 600, print)
    assert seen == ["pretrain.max_steps=3", "pretrain.micro_batch_size=2", "pretrain.micro_batch_size=1"]
    assert row["retries"] == ["micro_batch_size 4: out of memory", "micro_batch_size 2: out of memory"]
    # at micro batch 1 there is nothing left to halve: the failure stands
    assert row["sets"][-1] == "pretrain.micro_batch_size=1" and row["out_of_memory"]
    spent = mod.with_retries("sft", ["sft.max_steps=3"], 4, attempt, time.perf_counter() + 20, print)
    assert spent["error"].startswith("skipped") and len(seen) == 3  # no time left: not started


@pytest.mark.slow
def test_smoke_runs_every_stage_and_reports_figures(tmp_path):
    out = tmp_path / "gpu_stages.json"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--work", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, f"{res.stdout[-4000:]}\n{res.stderr[-4000:]}"

    # The printed table: each stage with a finite tokens/s, an MFU and a peak-memory figure.
    printed = {}
    for line in res.stdout.splitlines():
        m = re.match(r"^(pretrain|sft|dpo|grpo)\s+([\d,]+)\s+([\d.]+)%\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s", line)
        if m:
            printed[m.group(1)] = [float(g.replace(",", "")) for g in m.groups()[1:]]
    assert sorted(printed) == sorted(STAGES), res.stdout[-3000:]
    for stage, (tps, mfu, peak, est, ratio) in printed.items():
        assert tps > 0 and mfu > 0 and peak > 0 and est > 0 and ratio > 0, (stage, printed[stage])

    report = json.loads(out.read_text())
    assert report["mode"] == "smoke" and [r["stage"] for r in report["stages"]] == list(STAGES)
    for r in report["stages"]:
        assert "error" not in r, r
        assert r["steps"] == 3, r  # every optimizer step seen once (accelerate's wrapper not counted twice)
        for key in ("tokens_per_s", "mfu", "peak_memory_gib", "estimate_gib", "ratio", "mean_seq"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["stage"], key, r[key])
        assert (tmp_path / f"gpu_stages.{r['stage']}.log").is_file()
    pre = report["stages"][0]
    # Pre-training's packed rows are all full: steps 2 and 3 are exactly 2 x 8 rows x 64 tokens, each counted once
    # (the embedding sees every training forward; the held-out loss runs without autograd and is not counted).
    assert pre["tokens"] == 2 * 8 * 64 and pre["mean_seq"] == 64, pre
    # The probe's window also holds the time between steps, so its rate is at most about the engine's own per-step
    # figure over the same steps (a loose bound: the machine may be shared).
    assert 0.1 < pre["tokens_per_s"] / pre["engine_tokens_per_s"] < 1.5, pre
