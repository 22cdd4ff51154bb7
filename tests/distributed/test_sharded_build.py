"""The ZeRO-3 build and load (models/sharded.py) give exactly the weights of the whole-model path: a model built over
2 processes, each rank initialising only its partitions, equals the 1-process build bit for bit, and loading it back
partition by partition reproduces it, with tied and untied embeddings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("sharded_worker.py")


def _run(nproc: int, tied: str, out: Path) -> tuple[dict, dict]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    res = subprocess.run(
        [*cmd, str(WORKER), str(out), tied],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    return load_file(out / "built.safetensors"), load_file(out / "loaded.safetensors")


@pytest.mark.parametrize("tied", ["tied", "untied"])
def test_two_process_build_and_load_equal_one_process(tmp_path, tied):
    one, _ = _run(1, tied, tmp_path / "one")
    built, loaded = _run(2, tied, tmp_path / "two")
    assert one.keys() == built.keys() == loaded.keys()
    for name in one:
        assert one[name].equal(built[name]), f"{name}: the 2-process build differs from the 1-process one"
        assert built[name].equal(loaded[name]), f"{name}: loading the saved model partition by partition changed it"
    assert float(one["model.embed_tokens.weight"].std()) > 0.01  # initialised, not left empty
