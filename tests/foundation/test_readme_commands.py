"""README's command list works as written, in its order, from an empty directory (smoke-sized with `--set`)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from qwenflow.cli.main import app
from qwenflow.orchestration.smoke import SMOKE

README = Path(__file__).parents[2] / "README.md"
# Lines that need what a test run lacks, each covered by its own tests: a recipe file the user writes, a Ray cluster
# (tests/data/test_ray_engine.py), a registered champion to serve (tests/serving), a sweep of many training runs
# (tests/scaling), the 151k-token Qwen2.5 vocabulary build (tests/foundation/test_tokenizer.py).
NOT_RUN = ("my.yaml", "data.engine=ray", "deploy serve", "scaling sweep", "tokenizer build --out tok/")
# These take the smoke overrides (qwenflow.orchestration.smoke); the evaluation also scores fewer items per task.
SIZED = {"data prepare": [], "tokenizer build": [], "train ": [], "eval ": ["--limit", "4"]}


def readme_commands() -> list[list[str]]:
    block = re.search(r"## Commands\n\n```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "README.md has no ## Commands bash block"
    commands = []
    for line in block.group(1).splitlines():
        line = re.split(r"\s+#\s", line)[0].strip()
        if line and not any(skip in line for skip in NOT_RUN):
            commands += [shlex.split(part) for part in line.split("&&")]
    return commands


def test_the_documented_train_chain_is_in_the_list():
    ran = [" ".join(c[1:3]) for c in readme_commands()]
    for step in ("data prepare", "tokenizer build", "train pretrain", "train sft", "eval --model"):
        assert step in ran, (step, ran)
    assert ran.index("data prepare") < ran.index("tokenizer build") < ran.index("train pretrain")


def test_readme_commands_run_in_order(tracking, tmp_path, monkeypatch):
    """In one process (typer's runner) so that the imports are paid once: the commands are the CLI's own."""
    monkeypatch.chdir(tmp_path)
    # the pipeline's smoke sizes, and fewer steps still: this checks that the commands fit together, not learning
    fewer = ["pretrain.max_steps=2", "pretrain.eval_every=2", "pretrain.checkpoint_every=2", "sft.max_steps=2"]
    overrides = [a for kv in SMOKE + fewer for a in ("--set", kv)]
    runner = CliRunner()
    for cmd in readme_commands():
        assert cmd[0] == "qwenflow", cmd
        sized = [extra for s, extra in SIZED.items() if " ".join(cmd).startswith(f"qwenflow {s}")]
        t0 = time.time()
        done = runner.invoke(app, cmd[1:] + (overrides + sized[0] if sized else []))
        assert done.exit_code == 0, f"`{' '.join(cmd)}` failed:\n{done.output[-3000:]}\n{done.exception!r}"
        print(f"{time.time() - t0:6.1f} s  {' '.join(cmd)}")
    assert (tmp_path / "data" / "tokenizer").is_dir() and (tmp_path / "sft" / "model").is_dir()
    assert (tmp_path / "eval-out" / "report.json").is_file()


def test_pretrain_without_a_tokenizer_says_how_to_build_one(tmp_path):
    (tmp_path / "data" / "corpus").mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "qwenflow.cli.main", "train", "pretrain", "--data", "data", "--out", "base"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    msg = " ".join((done.stdout + done.stderr).split())
    assert "no tokenizer at data/tokenizer" in msg and "qwenflow tokenizer build --out data/tokenizer" in msg
