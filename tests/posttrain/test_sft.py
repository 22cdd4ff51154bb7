"""SFT: learns held-out arithmetic from a base model that gets none right; tracked in MLflow; bad data is refused."""
from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest

from arith_data import make_arith_data
from qwenflow.artifacts import read_lineage
from qwenflow.posttrain import common
from qwenflow.posttrain.sft import drop_too_long, run_sft
from qwenflow.recipe import load_recipe

TINY = ["model.vocab_size=1024", "tokenizer.vocab_size=1024"]


@pytest.fixture(scope="module")
def arith(tmp_path_factory):
    return make_arith_data(tmp_path_factory.mktemp("arith"), n_sft=2000, n_rl=64, n_eval=100)


def test_sft_raises_exact_match_on_held_out_arithmetic(tracking, arith, tiny_model_dir, tmp_path):
    recipe = load_recipe("tiny", TINY + ["sft.max_steps=SFT_STEPS", "sft.max_seq_len=64"])
    out = run_sft(recipe, arith, tiny_model_dir, tmp_path / "sft")
    lineage = read_lineage(out)
    before, after = lineage["exact_match_before"]["arithmetic"], lineage["exact_match_after"]["arithmetic"]
    assert before == 0.0  # a random-init model writes no correct sums
    assert after >= 0.15, f"SFT reached only {after:.0%} exact match"
    # the model dir is complete and usable: safetensors, tokenizer, recipe, lineage with the parent's hash
    assert (out / "model.safetensors").is_file() and (out / "qwenflow_recipe.yaml").is_file()
    assert len(lineage["parent_model.sha256"]) == 64 and "data.sft.sha256" in lineage
    model, tok, _ = common.starting_model(out)
    acc, _ = common.exact_match(model, tok, common.read_eval(arith)["arithmetic"])
    assert acc == pytest.approx(after)
    # tracked: params with hashes, before/after metrics, sample tables
    mlflow.set_tracking_uri(tracking)
    run = mlflow.search_runs(experiment_names=[recipe.tracking.experiment], filter_string="tags.qwenflow.stage = 'sft'",
                             output_format="list")[0]
    assert run.data.metrics["eval/arithmetic/exact_match_after"] == pytest.approx(after)
    assert run.data.params["parent_model.sha256"] == lineage["parent_model.sha256"]
    assert "sft/train/loss" in run.data.metrics
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "samples")}
    assert {"samples/before.json", "samples/after.json"} <= arts
    table = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/samples/after.json"))
    assert "completion" in table["columns"]


def _write(tmp_path, rows, kind="sft", name="train.parquet"):
    d = tmp_path / kind
    d.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(d / name)
    return tmp_path


def test_bad_sft_data_gets_specific_errors(tmp_path):
    d = _write(tmp_path / "a", {"text": ["hello"]})
    with pytest.raises(common.DataError, match=r"missing column\(s\) \['messages'\]"):
        common.read_dataset(d, "sft")
    d = _write(tmp_path / "b", {"messages": [[{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]]})
    with pytest.raises(common.DataError, match="row 0, message 1: unknown role 'bot'"):
        common.read_dataset(d, "sft")
    d = _write(tmp_path / "c", {"messages": [[{"role": "user", "content": "hi"}]]})
    with pytest.raises(common.DataError, match="last message must be the assistant's"):
        common.read_dataset(d, "sft")
    with pytest.raises(common.DataError, match="produced by `qwenflow data prepare`"):
        common.read_dataset(tmp_path / "nowhere", "sft")


def test_too_long_conversations_are_dropped_and_counted():
    df = pd.DataFrame({"messages": [[{"role": "user", "content": "x"}]] * 3})
    kept, dropped = drop_too_long(df, [10, 500, 20], 100, "here")
    assert len(kept) == 2 and dropped == 1
    with pytest.raises(common.DataError, match="all 3 conversations are longer than 5 tokens"):
        drop_too_long(df, [10, 500, 20], 5, "here")
