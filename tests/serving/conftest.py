"""A real `bentoml serve` of the service on loopback, started once per package, serving a tiny model TRAINED here
with the platform's own stages (pre-training on real text, then SFT on two-digit arithmetic)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
from pathlib import Path

import pytest

from tests.serving.launch import start_serve

# Sized to about a minute of CPU on 2 idle cores: a 2-layer, 64-wide model is fast to train and to serve. 30
# pre-training steps and 120 SFT steps teach it the answer format (digits, then <|im_end|>: the SFT loss falls from
# 6.1 to 1.7 by step 50); held-out accuracy is still near zero at this budget (two-digit sums need ~750+ SFT steps,
# measured when sizing the tiny recipe), so the tests assert the format and agreement with the SFT stage's own
# evaluation, not a score.
TRAIN = [
    "model.vocab_size=1024",
    "tokenizer.vocab_size=1024",
    "model.hidden_size=64",
    "model.num_layers=2",
    "model.intermediate_size=192",
    "pretrain.max_steps=30",
    "pretrain.seq_len=128",
    "pretrain.global_batch_size=16",
    "pretrain.micro_batch_size=16",
    "pretrain.eval_every=1000",
    "pretrain.checkpoint_every=1000",
    "pretrain.compile=false",
    "sft.max_steps=120",
    "sft.global_batch_size=32",
    "sft.micro_batch_size=32",
    "sft.learning_rate=3e-3",
    "sft.min_learning_rate=3e-4",
    "sft.max_seq_len=64",
]
N_EVAL = 24
API_KEY = "qwenflow-test-key"  # the shared server requires it, as a deployment with a Secret does
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, env: dict[str, str], timeout: float = 300) -> tuple[subprocess.Popen, str]:
    port = free_port()
    full = {
        **os.environ,
        "BENTOML_HOME": str(tmp / "bentoml_home"),
        "BENTOML_DO_NOT_TRACK": "true",
        "OMP_NUM_THREADS": "1",
        **env,
    }
    return start_serve(tmp, full, port, tmp / "serve.log", timeout)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_data(root: Path) -> Path:
    """corpus/ (real stdlib source), sft/ and eval/ (held-out two-digit arithmetic) in the docs/stages.md layout."""
    import pandas as pd

    from qwenflow.artifacts import write_manifest
    from qwenflow.data.synthetic import arithmetic_universe
    from tests.conftest import stdlib_texts

    texts = stdlib_texts(300_000)
    problems = arithmetic_universe()
    random.Random(0).shuffle(problems)
    held, train = problems[:N_EVAL], problems[N_EVAL : N_EVAL + 120 * 32]  # one epoch
    chat = lambda q: [{"role": "user", "content": q}]  # noqa: E731
    parts = {
        "corpus/train.parquet": pd.DataFrame({"text": [t for i, t in enumerate(texts) if i % 10]}),
        "corpus/val.parquet": pd.DataFrame({"text": [t[:8000] for t in texts[::10]]}),
        "sft/train.parquet": pd.DataFrame(
            {"messages": [chat(p["question"]) + [{"role": "assistant", "content": p["answer"]}] for p in train]}
        ),
        "eval/arithmetic.parquet": pd.DataFrame(
            {"prompt": [chat(p["question"]) for p in held], "task": "arithmetic", "answer": [p["answer"] for p in held]}
        ),
    }
    for rel, df in parts.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(root / rel)
        write_manifest((root / rel).parent, rows=len(df))
    return root


@pytest.fixture(scope="session")
def trained_model(tiny_tokenizer_dir, mlflow_server, tmp_path_factory):
    """(model dir, data dir): run_pretrain -> run_sft, tracked in the loopback MLflow server like a real run."""
    from qwenflow.posttrain.sft import run_sft
    from qwenflow.recipe import load_recipe
    from qwenflow.train.pretrain import run_pretrain

    tmp = tmp_path_factory.mktemp("trained")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mp.setenv("QWENFLOW_HOME", str(tmp / "qwenflow_home"))
    mp.delenv("QWENFLOW_PARENT_RUN_ID", raising=False)
    try:
        recipe = load_recipe("tiny", TRAIN)
        data = write_data(tmp / "data")
        base = run_pretrain(recipe, data, tiny_tokenizer_dir, tmp / "pretrain")
        return run_sft(recipe, data, base, tmp / "sft"), data
    finally:
        mp.undo()


@pytest.fixture(scope="package")
def server(trained_model, tmp_path_factory):
    """The trained model behind the OpenAI-compatible API: (base_url, served model name, server log path)."""
    tmp = tmp_path_factory.mktemp("serve")
    proc, url = start_server(
        tmp,
        {
            "QWENFLOW_MODEL": str(trained_model[0]),
            "QWENFLOW_SERVED_NAME": "tiny",
            "QWENFLOW_MAX_TOKENS_LIMIT": "256",
            "QWENFLOW_API_KEY": API_KEY,
        },
    )
    yield url, "tiny", tmp / "serve.log"
    stop_server(proc)
