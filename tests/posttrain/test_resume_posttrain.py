"""SFT, reward, DPO and GRPO killed with SIGKILL mid-run and resumed by rerunning the same command reach the
per-step losses of an uninterrupted run (GRPO: with the same prompts in the same order); a checkpoint directory
left half-written is skipped with a warning. Smoke-sized: a few seconds of training per stage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from arith_data import make_arith_data
from pref_data import make_preferences

from qwenflow.posttrain import checkpoints
from qwenflow.recipe import load_recipe

STEPS, EVERY = 6, 2
COMMON = ["model.vocab_size=1024", "tokenizer.vocab_size=1024"]
# Per stage: recipe overrides (batches big enough that a step takes a noticeable time on 2 cores, so the kill
# lands mid-run), the CLI's extra arguments, and the stage function.
STAGES = {
    "sft": ["sft.global_batch_size=16", "sft.micro_batch_size=16", "sft.max_seq_len=48", "sft.learning_rate=3e-3"],
    "reward": ["reward.global_batch_size=16", "reward.micro_batch_size=16", "reward.max_seq_len=48"],
    "dpo": [
        "dpo.global_batch_size=8",
        "dpo.micro_batch_size=8",
        "dpo.max_seq_len=48",
        "dpo.max_prompts=16",
        "dpo.max_new_tokens=4",
        "dpo.min_pairs=8",
        "dpo.optimizer=ondare_adamw",
        "dpo.learning_rate=1e-4",
    ],
    "grpo": [
        "grpo.global_batch_size=16",
        "grpo.micro_batch_size=16",
        "grpo.num_generations=4",
        "grpo.max_completion_length=4",
        "grpo.max_seq_len=64",
        "grpo.learning_rate=3e-4",
        "grpo.temperature=1.0",
        "grpo.reward_weights={verifier: 1.0, format: 0.5}",
        "grpo.beta=0.04",
    ],  # a KL term: with beta 0 GRPO's loss is ~0 at every step (zero-mean advantages)
}


def overrides(stage: str) -> list[str]:
    return (
        COMMON
        + STAGES[stage]
        + [
            f"{stage}.max_steps={STEPS}",
            f"{stage}.checkpoint_every={EVERY}",
            f"{stage}.logging_steps=1",
            f"{stage}.keep_checkpoints=2",
        ]
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_arith_data(tmp_path_factory.mktemp("data"), n_sft=160, n_rl=64, n_eval=4)
    return make_preferences(root, n_train=96, n_test=16)


def trainer_dir(stage: str, out: Path) -> Path:
    return out / ("train" if stage == "sft" else "trainer")


def losses(stage: str, out: Path, key: str = "loss") -> dict[int, float]:
    """Per-step training loss (or another logged value) from the newest complete checkpoint's trainer state (its
    log history spans the steps before the kill and after the resume)."""
    ckpt = checkpoints.resume_point(trainer_dir(stage, out), resume=True)
    hist = json.loads((Path(ckpt) / "trainer_state.json").read_text())["log_history"]
    return {h["step"]: h[key] for h in hist if key in h}


def prompt_order(out: Path) -> dict[int, list[int]]:
    """GRPO's prompts per step; a step trained again after the resume keeps its last record."""
    rows = [json.loads(line) for line in (out / "trainer" / "prompt_order.jsonl").read_text().splitlines()]
    return {r["step"]: r["prompt_idx"] for r in rows}


def command(stage: str, model: Path, data: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "qwenflow.cli.main",
        "train",
        stage,
        "--from",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        "--resume",
    ] + [a for kv in overrides(stage) for a in ("--set", kv)]


def newest_complete(root: Path) -> int:
    done = [int(p.name.split("-")[1]) for p in root.glob("checkpoint-*") if (p / checkpoints.MARKER).is_file()]
    return max(done, default=0)


def run_in_process(stage: str, model: Path, data: Path, out: Path):
    from qwenflow.posttrain.dpo import run_dpo
    from qwenflow.posttrain.grpo import run_grpo
    from qwenflow.posttrain.reward import run_reward
    from qwenflow.posttrain.sft import run_sft

    fn = {"sft": run_sft, "reward": run_reward, "dpo": run_dpo, "grpo": run_grpo}[stage]
    return fn(load_recipe("tiny", overrides(stage)), data, model, out)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("stage", list(STAGES))
def test_killed_stage_resumes_to_the_same_losses(stage, tracking, data, tiny_model_dir, tmp_path):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}
    proc = subprocess.Popen(
        command(stage, tiny_model_dir, data, killed),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    root = trainer_dir(stage, killed)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and newest_complete(root) < EVERY:
        time.sleep(0.02)
    assert proc.poll() is None, f"{stage} ended before it could be killed: {proc.stderr.read().decode()[-3000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = newest_complete(root)
    assert EVERY <= at_kill < STEPS, f"the kill did not land mid-run (newest checkpoint {at_kill})"

    if stage == "sft":  # a checkpoint cut off mid-write (no marker, truncated weights) must be passed over
        src, cut = root / f"checkpoint-{at_kill}", root / f"checkpoint-{at_kill + 1}"
        shutil.copytree(src, cut)
        (cut / checkpoints.MARKER).unlink()
        weights = cut / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])

    resumed = subprocess.run(
        command(stage, tiny_model_dir, data, killed), env=env, capture_output=True, text=True, timeout=400
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    if stage == "sft":
        said = " ".join(resumed.stderr.split())
        assert f"checkpoint-{at_kill + 1}" in said and "skipped" in said, said[-3000:]
    run_in_process(stage, tiny_model_dir, data, reference)

    got, want = losses(stage, killed), losses(stage, reference)
    assert sorted(want) == list(range(1, STEPS + 1)) and sorted(got) == sorted(want)
    for step in range(at_kill + 1, STEPS + 1):
        assert got[step] == pytest.approx(want[step], abs=1e-4), (stage, step, got, want)
    assert len({round(v, 6) for v in want.values()}) > 1  # the losses move: equality is not trivial
    print(
        f"{stage}: killed at checkpoint {at_kill}, resumed steps {at_kill + 1}..{STEPS}: max |loss - reference| "
        f"{max(abs(got[s] - want[s]) for s in range(at_kill + 1, STEPS + 1)):.2e}"
    )
    if stage == "grpo":  # the same prompts in the same order, and the same sampled completions' rewards
        got_p, want_p = prompt_order(killed), prompt_order(reference)
        got_r, want_r = losses(stage, killed, "reward"), losses(stage, reference, "reward")
        for step in range(at_kill + 1, STEPS + 1):
            assert got_p[step] == want_p[step], step
            assert got_r[step] == pytest.approx(want_r[step], abs=1e-4), step
    # only the newest `keep_checkpoints` complete checkpoints are left
    assert sorted(int(p.name.split("-")[1]) for p in root.glob("checkpoint-*")) == [STEPS - EVERY, STEPS]


def test_resume_point_skips_half_written_and_needs_the_flag(tmp_path, caplog):
    for step, done in ((2, True), (4, True), (6, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if done:
            (tmp_path / f"checkpoint-{step}" / checkpoints.MARKER).write_text(str(step))
    with caplog.at_level("WARNING"):
        assert checkpoints.resume_point(tmp_path, resume=True) == str(tmp_path / "checkpoint-4")
    assert "checkpoint-6" in caplog.text and "skipped" in caplog.text
    with pytest.raises(FileExistsError, match="--resume"):
        checkpoints.resume_point(tmp_path, resume=False)
    assert checkpoints.resume_point(tmp_path / "empty", resume=False) is None
    checkpoints._rotate(tmp_path, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4", "checkpoint-6"]
