"""A pre-training run killed with SIGKILL and resumed reaches the same losses as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest

from qwenflow.recipe import load_recipe
from qwenflow.train.pretrain import run_pretrain
from tests.train.conftest import TINY


def losses(out_dir) -> dict[int, float]:
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_killed_run_resumes_to_the_same_losses(tracking, corpus_dir, tiny_tokenizer_dir, tmp_path):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    cmd = [
        sys.executable,
        "-m",
        "qwenflow.cli.main",
        "train",
        "pretrain",
        "--data",
        str(corpus_dir),
        "--out",
        str(killed),
        "--tokenizer",
        str(tiny_tokenizer_dir),
    ] + [a for kv in TINY for a in ("--set", kv)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # wait until past the first checkpoint, then kill
        if (
            (killed / "checkpoints" / "step-0000004" / "COMPLETE").is_file()
            and (killed / "metrics.jsonl").is_file()
            and max(losses(killed), default=0) >= 5
        ):
            break
        time.sleep(0.1)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert max(losses(killed)) < 12

    recipe = load_recipe("tiny", TINY)
    run_pretrain(recipe, corpus_dir, tiny_tokenizer_dir, killed, resume=True)
    run_pretrain(recipe, corpus_dir, tiny_tokenizer_dir, reference)

    got, want = losses(killed), losses(reference)
    assert sorted(got) == list(range(1, 13))
    for step in range(1, 13):
        assert got[step] == pytest.approx(want[step], abs=1e-5), step
    assert want[12] < want[1] - 0.3  # it learns

    # the run is in MLflow with its metrics, hyperparameters, model files, loss curve and checkpoint references
    client = mlflow.MlflowClient(tracking)
    runs = client.search_runs(
        [client.get_experiment_by_name("qwenflow-tiny").experiment_id],
        "tags.`qwenflow.stage` = 'pretrain'",
        order_by=["attributes.start_time DESC"],
    )
    run = runs[0]
    assert float(run.data.params["learning_rate"]) == 3e-3 and run.data.params["grad_accum_steps"] == "2"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 12
    for key in ("lr", "grad_norm", "tokens_per_s", "mfu", "tokens_seen", "memory_gb", "val_loss"):
        assert key in run.data.metrics, key
    assert 0 < run.data.metrics["mfu"] < 1
    # checkpoints are referenced by path (hashing them while the other ranks wait would stall a multi-GPU run)
    assert any(k.startswith("checkpoint.") and "/checkpoints/step-" in v for k, v in run.data.tags.items())
    files = {f.path for f in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/model.safetensors", "model/tokenizer.json", "model/config.json"} <= files
    assert "loss_curve.png" in {f.path for f in client.list_artifacts(run.info.run_id)}
    resumed = [r for r in runs if r.data.params.get("resumed_from_step") not in (None, "none")]
    assert resumed and int(resumed[0].data.params["resumed_from_step"]) >= 4


def test_existing_checkpoints_need_resume(tracking, corpus_dir, tiny_tokenizer_dir, tmp_path):
    (tmp_path / "checkpoints" / "step-0000004").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-0000004" / "COMPLETE").write_text("4")
    with pytest.raises(FileExistsError, match="--resume"):
        run_pretrain(load_recipe("tiny", TINY), corpus_dir, tiny_tokenizer_dir, tmp_path)
