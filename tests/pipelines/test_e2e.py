"""ONE real local run of the whole tiny pipeline (every stage, real MLflow server, real artifacts), killed midway
and resumed, then rerun with nothing changed. Step counts are cut by SMOKE so it takes minutes on 2 cores."""

import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
from pipeline_smoke import SMOKE, qwenflow_cmd, run_qwenflow

from qwenflow.orchestration import events

ALL_STAGES = [
    "start_run",
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
    "register",
    "build_bento",
    "deploy",
]


def _latest_events(run_dir: Path) -> dict:
    files = sorted(run_dir.glob("events-*.jsonl"))
    return events.latest_by_stage(events.read(files[-1])) if files else {}


def _run_args(run_dir):
    return [
        "run",
        "--recipe",
        "tiny",
        "--plain",
        "--run-dir",
        str(run_dir),
        *[a for ov in SMOKE for a in ("--set", ov)],
    ]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_whole_tiny_pipeline_killed_resumed_and_cached(tracking, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}

    # 1. Start a run and kill it (the whole process group, like a lost terminal) once pre-training is under way.
    proc = subprocess.Popen(
        qwenflow_cmd(*_run_args(run_dir)),
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).parents[2],
    )
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        state = _latest_events(run_dir)
        if state.get("pretrain", {}).get("status") in ("start", "done"):
            break
        time.sleep(1)
    assert proc.poll() is None, "the first run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = _latest_events(run_dir)
    assert [killed[s]["status"] for s in ("prepare_data", "validate_data", "tokenizer")] == ["done"] * 3

    # 2. Rerun: finished stages are skipped, the rest runs to a registered model and a Bento.
    time.sleep(1.1)  # a new events file (names carry the second)
    done = run_qwenflow(_run_args(run_dir), env={"MLFLOW_TRACKING_URI": tracking}, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    state = _latest_events(run_dir)
    assert [state[s]["status"] for s in ("prepare_data", "validate_data", "tokenizer")] == ["cached"] * 3
    for s in ALL_STAGES[4:]:
        assert state[s]["status"] == "done", (s, state.get(s))
    assert state["gate"]["result"]["passed"] is True or "registered" not in done.stdout
    out = " ".join(done.stdout.split())
    assert "MLflow parent run:" in out and "scores:" in out

    # Real artifacts: a safetensors model after every training stage, a registered version, a Bento.
    for s in ("pretrain", "long_context", "sft", "reward", "dpo", "grpo"):
        assert list(Path(state[s]["output"]).glob("*.safetensors")), s
    uri = state["register"]["result"]["uri"]
    assert uri.startswith("models:/qwenflow-tiny/") and uri in out
    bento = state["build_bento"]["result"]["bento"]
    assert bento in out
    bento_home = Path(os.environ["QWENFLOW_HOME"]) / "bentoml"
    assert list((bento_home / "bentos").rglob("bento.yaml")), f"no Bento under {bento_home}"

    # One MLflow parent run per pipeline run, one nested run per stage, tagged with the KFP run id.
    mlflow.set_tracking_uri(tracking)
    parent_id = state["start_run"]["result"]["parent_run_id"]
    parent = mlflow.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    kfp_run_id = parent.data.tags["kfp.run_id"]
    children = mlflow.search_runs(
        search_all_experiments=True, output_format="list", filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    stages = {c.data.tags.get("qwenflow.stage") for c in children}
    assert {"pretrain", "sft", "grpo"} <= stages, stages
    assert all(c.data.tags.get("kfp.run_id") == kfp_run_id for c in children)

    # What an MLflow user expects: every stage nested under the pipeline run, the datasets each stage read as run
    # inputs, the headline numbers and recipe on the parent run, and a registered model in a standard flavour.
    assert set(ALL_STAGES[1:]) <= stages, stages  # every stage's MLflow run is named after it
    client = mlflow.MlflowClient()
    sft_run = client.get_run(next(c.info.run_id for c in children if c.data.tags.get("qwenflow.stage") == "sft"))
    assert {d.dataset.name for d in sft_run.inputs.dataset_inputs} == {"tiny-sft", "tiny-eval"}
    assert all(len(d.dataset.digest) == 32 for d in sft_run.inputs.dataset_inputs)
    parent = client.get_run(parent_id)
    assert parent.data.params["recipe"] == "tiny" and parent.data.params["sft.enabled"] == "True"
    assert {d.dataset.name for d in parent.inputs.dataset_inputs} == {
        f"tiny-{k}" for k in ("corpus", "sft", "rl", "preferences", "eval")
    }
    assert parent.data.tags["qwenflow.registered_model"] == uri
    for stage in ("pretrain", "sft", "grpo", "eval"):
        assert any(k.startswith(f"{stage}/") for k in parent.data.metrics), (stage, sorted(parent.data.metrics))
    assert sft_run.data.tags["qwenflow.chat_model"].startswith("models:/")  # each stage's model as a pyfunc
    from qwenflow.eval.registry import promote

    promote("qwenflow-tiny", reason="end-to-end test")
    chat = mlflow.pyfunc.load_model("models:/qwenflow-tiny@champion")
    answer = chat.predict({"messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 8})
    assert answer["choices"][0]["message"]["role"] == "assistant" and answer["usage"]["completion_tokens"] >= 1

    # 3. Nothing changed: every stage comes from the cache (the gate re-checks: the champion may have moved).
    time.sleep(1.1)
    t0 = time.time()
    again = run_qwenflow(_run_args(run_dir), env={"MLFLOW_TRACKING_URI": tracking}, timeout=600)
    resumed_s = time.time() - t0
    assert again.returncode == 0, again.stderr[-3000:]
    state = _latest_events(run_dir)
    assert all(state[s]["status"] == "cached" for s in ALL_STAGES[1:] if s != "gate"), {
        s: state[s]["status"] for s in state
    }
    assert state["gate"]["status"] == "done"
    print(f"resumed run with nothing changed: {resumed_s:.1f} s")
