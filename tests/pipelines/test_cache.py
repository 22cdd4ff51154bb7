"""The resume cache's key: content of inputs, the stage's recipe sections and code; not paths, resources or switches."""

import os

from qwenflow.orchestration import cache
from qwenflow.recipe import load_recipe
from qwenflow.stages import STAGES


def _dataset(root, text="hello"):
    d = root / "corpus"
    d.mkdir(parents=True)
    (d / "train.parquet").write_text(text)
    return root


def test_key_follows_input_content_not_its_path(tmp_path):
    recipe = load_recipe("tiny")
    sft = STAGES["sft"]
    a, b = _dataset(tmp_path / "a"), _dataset(tmp_path / "b")
    model = _dataset(tmp_path / "m", "weights")
    k = cache.stage_key(sft, recipe, {"data": str(a), "model": str(model)})
    assert k == cache.stage_key(sft, recipe, {"data": str(b), "model": str(model)})
    (b / "corpus" / "train.parquet").write_text("changed")
    assert k != cache.stage_key(sft, recipe, {"data": str(b), "model": str(model)})


def test_key_follows_the_stages_section_only(tmp_path):
    data = str(_dataset(tmp_path / "d"))
    sft = STAGES["sft"]

    def key(*ov):
        return cache.stage_key(sft, load_recipe("tiny", list(ov)), {"data": data, "model": data})

    base = key()
    assert key("sft.learning_rate=5e-4") != base
    assert key("dpo.learning_rate=5e-4") == base  # another stage's section
    assert key("sft.resources.memory=64Gi", "sft.resources.gpu_product=NVIDIA-H100-80GB-HBM3") == base  # where it runs
    assert key("sft.enabled=false") == base


def test_parameters_key_by_value(tmp_path):
    reg = STAGES["build_bento"]
    recipe = load_recipe("tiny")
    assert cache.stage_key(reg, recipe, {"model_uri": "models:/m/1"}) != cache.stage_key(
        reg, recipe, {"model_uri": "models:/m/2"}
    )


def test_commit_lookup_and_hardlinked_output(tmp_path):
    entry = cache.StageCache(tmp_path / "cache", "sft", "k1")
    assert entry.lookup() is None
    work = entry.prepare(keep_partial=False)
    (work / "model.safetensors").write_bytes(b"w" * 100)
    (work / "checkpoints").mkdir()
    (work / "checkpoints" / "step-5").write_text("partial")
    assert entry.lookup() is None  # not complete yet
    entry.commit({"model_dir": "x"})
    assert entry.lookup() == {"result": {"model_dir": "x"}}
    out = tmp_path / "out"
    cache.link_tree(entry.dir, out)
    assert (out / "model.safetensors").read_bytes() == b"w" * 100
    assert os.stat(out / "model.safetensors").st_ino == os.stat(work / "model.safetensors").st_ino
    assert not (out / "checkpoints").exists()  # checkpoints stay in the work dir
    assert cache.content_digest(out) == cache.content_digest(work)


def test_partial_work_dir_is_kept_only_for_resumable_stages(tmp_path):
    entry = cache.StageCache(tmp_path, "pretrain", "k")
    (entry.prepare(keep_partial=True) / "checkpoints").mkdir()
    assert (entry.prepare(keep_partial=True) / "checkpoints").is_dir()
    assert not (entry.prepare(keep_partial=False) / "checkpoints").exists()


def test_force(monkeypatch):
    monkeypatch.setenv(cache.ENV_FORCE, "sft,grpo")
    assert cache.forced("sft") and cache.forced("grpo") and not cache.forced("dpo")
    monkeypatch.setenv(cache.ENV_FORCE, "all")
    assert cache.forced("tokenizer")
