"""A local `qwenflow run` killed with SIGKILL mid-SFT and rerun: no MLflow run is left RUNNING (the dead attempt's
are KILLED with the reason), SFT resumes from its last checkpoint, and the finished pipeline run lists every stage,
the cached ones included, each with its artifact digest and (cached) the run that produced it."""

import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
from pipeline_smoke import SMOKE, qwenflow_cmd, run_qwenflow

from qwenflow.orchestration import events
from qwenflow.posttrain.checkpoints import MARKER

# Enough SFT steps to be killed between checkpoints; a gate nobody passes, so registry/Bento/deploy stay out of it.
EXTRA = [
    "sft.max_steps=16",
    "sft.checkpoint_every=2",
    "sft.logging_steps=1",
    "eval.gates=[{metric: arithmetic/exact_match, min: 1.0}]",
]
LINEAGE = [
    "prepare_data",
    "validate_data",
    "tokenizer",
    "pretrain",
    "long_context",
    "sft",
    "reward",
    "dpo",
    "grpo",
    "eval",
    "gate",
]


def _args(run_dir):
    return [
        "run",
        "--recipe",
        "tiny",
        "--plain",
        "--run-dir",
        str(run_dir),
        *[a for ov in SMOKE + EXTRA for a in ("--set", ov)],
    ]


def _latest_events(run_dir: Path) -> dict:
    files = sorted(run_dir.glob("events-*.jsonl"))
    return events.latest_by_stage(events.read(files[-1])) if files else {}


def _sft_checkpoints(run_dir: Path) -> list[int]:
    return sorted(
        int(p.parent.name.split("-")[1]) for p in (run_dir / "cache" / "sft").glob(f"*/train/checkpoint-*/{MARKER}")
    )


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_run_killed_mid_sft_leaves_true_mlflow_and_resumes(tracking, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}
    proc = subprocess.Popen(
        qwenflow_cmd(*_args(run_dir)),
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).parents[2],
    )
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None and max(_sft_checkpoints(run_dir), default=0) < 4:
        time.sleep(0.2)
    assert proc.poll() is None, "the first run ended before SFT could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = max(_sft_checkpoints(run_dir))
    assert 4 <= at_kill < 16

    mlflow.set_tracking_uri(tracking)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("qwenflow-tiny").experiment_id
    dead = client.search_runs([exp], "attributes.status = 'RUNNING'")
    assert {r.data.tags.get("qwenflow.stage") for r in dead} >= {"pipeline", "sft"}  # what SIGKILL leaves behind

    time.sleep(1.1)  # a new events file
    done = run_qwenflow(_args(run_dir), env={"MLFLOW_TRACKING_URI": tracking}, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    state = _latest_events(run_dir)
    assert [state[s]["status"] for s in ("prepare_data", "validate_data", "tokenizer", "pretrain", "long_context")] == [
        "cached"
    ] * 5
    assert state["sft"]["status"] == "done"

    # 1. nothing RUNNING; the dead attempt's runs are KILLED and say why
    assert client.search_runs([exp], "attributes.status = 'RUNNING'") == []
    for r in dead:
        r = client.get_run(r.info.run_id)
        assert r.info.status == "KILLED" and "qwenflow.killed_reason" in r.data.tags, r.data.tags

    # 2. SFT resumed: the new SFT run logged losses only from the step after its last checkpoint
    parent_id = state["start_run"]["result"]["parent_run_id"]
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    by_stage = {c.data.tags["qwenflow.stage"]: c for c in children}
    steps = [m.step for m in client.get_metric_history(by_stage["sft"].info.run_id, "sft/train/loss")]
    assert steps and min(steps) == at_kill + 1 and max(steps) == 16, steps

    # 3. the whole lineage under the new parent, with digests; cached stages point at the runs that made them
    assert client.get_run(parent_id).info.status == "FINISHED"
    assert set(LINEAGE) <= set(by_stage), sorted(by_stage)
    for stage in LINEAGE:
        assert len(by_stage[stage].data.tags.get("qwenflow.artifact_digest", "")) == 64, stage
    for stage in ("prepare_data", "validate_data", "tokenizer", "pretrain", "long_context"):
        tags = by_stage[stage].data.tags
        assert tags["qwenflow.cached"] == "true", stage
        source = client.get_run(tags["qwenflow.source_run_id"])
        assert source.data.tags["qwenflow.stage"] == stage and source.info.run_id != by_stage[stage].info.run_id
        assert source.data.tags["qwenflow.artifact_digest"] == tags["qwenflow.artifact_digest"], stage
