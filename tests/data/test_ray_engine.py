"""data.engine: ray (a local Ray instance, as in CI) gives the single-process path's datasets exactly: the same
corpus records (file digests), drops by reason, mixture, packed token shards, and the same first training losses.

One Ray instance (2 CPUs, 256 MB object store) serves the whole module; the corpus carries planted exact and near
duplicates and unlabelled documents, so every global step (band buckets, domain classifier, mixture) has work."""

from __future__ import annotations

import json
import random

import pytest
import torch

from qwenflow.artifacts import read_manifest
from qwenflow.data.pack import pack_corpus
from qwenflow.data.prepare import prepare_data
from qwenflow.recipe import load_recipe
from qwenflow.train.batches import PackedBatches
from tests.conftest import stdlib_texts

SMALL = [
    "data.max_bytes_per_source=150000",
    "data.sft_examples=300",
    "data.rl_prompts=100",
    "data.preference_pairs=100",
    "data.eval_examples=40",
    "data.workers=2",
]


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, object_store_memory=256 << 20, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _planted_source(folder):
    """User documents without a domain label, with exact copies (whitespace changed) and near copies (one word)."""
    rng = random.Random(0)
    text = "".join(stdlib_texts(50_000_000)[-40:])  # source the named python_stdlib source is unlikely to reach
    docs = [f"# planted document {i}\n{text[i * 4000 : (i + 1) * 4000]}" for i in range(24)]
    rows = [{"text": t} for t in docs]
    rows += [{"text": docs[i].replace("\n", "\n  ", 3)} for i in range(0, 10, 2)]  # exact after whitespace collapse
    for i in range(1, 10, 2):
        words = docs[i].split(" ")
        words[rng.randrange(len(words) // 2, len(words))] = "changed"
        rows.append({"text": " ".join(words)})
    rng.shuffle(rows)
    folder.mkdir()
    (folder / "planted.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(folder)


@pytest.fixture(scope="module")
def both(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    planted = _planted_source(root / "user")
    out = {}
    for engine in ("local", "ray"):
        recipe = load_recipe("tiny", SMALL + [f"data.engine={engine}"])
        recipe.data.sources.append(planted)
        out[engine] = prepare_data(recipe, root / engine)
    return root, out


def test_same_records_drops_and_mixture(both):
    root, rep = both
    local, ray_ = (read_manifest(root / e / "corpus") for e in ("local", "ray"))
    assert local["engine"] == "local" and ray_["engine"] == "ray"
    assert local["files"] == ray_["files"]  # sha256 of train.parquet and val.parquet: the same records, in order
    assert rep["ray"]["drops"] == rep["local"]["drops"]
    assert rep["local"]["drops"]["exact_duplicate"] >= 3 and rep["local"]["drops"]["near_duplicate"] >= 3
    assert rep["ray"]["mixture"] == rep["local"]["mixture"]
    assert rep["ray"]["quality"] == rep["local"]["quality"]
    assert rep["ray"]["domains"] == rep["local"]["domains"] and rep["local"]["domains"]["classified"] >= 20
    assert rep["ray"]["contamination"] == rep["local"]["contamination"]
    assert set(rep["ray"]["steps"]) == set(rep["local"]["steps"])


def test_same_packed_tokens_and_first_losses(both, tiny_tokenizer_dir):
    root, _ = both
    packed = {
        e: pack_corpus(root / e, tiny_tokenizer_dir, 128, root / f"packed-{e}", engine=e) for e in ("local", "ray")
    }
    assert packed["ray"]["files"] == packed["local"]["files"]  # every shard's sha256
    assert packed["ray"]["splits"]["train"]["tokens"] == packed["local"]["splits"]["train"]["tokens"] > 10_000
    assert packed["local"]["vocab_size"] == 1024

    from qwenflow.models import build_model

    spec = load_recipe("tiny", ["model.vocab_size=1024", "tokenizer.vocab_size=1024"]).model
    losses = {}
    for e in ("local", "ray"):
        batches = PackedBatches(root / f"packed-{e}", micro_batch=4, global_batch=4, seed=0, rank=0, world=1)
        model = build_model(spec, seed=0)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        losses[e] = []
        for step in range(3):
            ids = batches.micro_batch(step, 0)
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses[e].append(loss.item())
    assert losses["ray"] == losses["local"]
    assert losses["local"][2] < losses["local"][0]  # it trains
