"""DPO with the Online Merging Optimizer: rejection-sampled pairs (or the preferences fallback), tracked."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from arith_data import make_arith_data
from pref_data import make_preferences

from qwenflow.posttrain.common import starting_model
from qwenflow.posttrain.dpo import run_dpo
from qwenflow.posttrain.rejection_sampling import rejection_sample
from qwenflow.recipe import load_recipe

SMALL = [
    "model.vocab_size=1024",
    "tokenizer.vocab_size=1024",
    "dpo.max_steps=3",
    "dpo.global_batch_size=4",
    "dpo.micro_batch_size=4",
    "dpo.max_seq_len=48",
    "dpo.max_prompts=16",
    "dpo.max_new_tokens=4",
    "dpo.min_pairs=8",
    "dpo.optimizer=ondare_adamw",
]


def test_rejection_sampling_labels_pairs_and_counts(tiny_model_dir, tmp_path):
    model, tok, _ = starting_model(tiny_model_dir)
    prompts = pd.DataFrame(
        {
            "prompt": [[{"role": "user", "content": f"What is {i} + 1?"}] for i in range(6)],
            "task": ["even"] * 5 + ["broken"],
            "answer": ["x"] * 6,
        }
    )

    def verifier(completions, task, answer):  # pass answers of even length; the 'broken' task's verifier raises
        if task[0] == "broken":
            raise RuntimeError("verifier crashed")
        return [float(len(c) % 2 == 0) for c in completions]

    data = rejection_sample(
        model, tok, prompts, samples_per_prompt=4, max_new_tokens=5, temperature=1.5, verifier=verifier
    )
    c = data.counts
    assert c["even/pass"] + c["even/fail"] == 20 and c["broken/error"] == 4
    assert len(data.sft) == c["sft_rows"] and all(len(m[-1]["content"]) % 2 == 0 for m in data.sft["messages"])
    for row in data.pairs.itertuples():
        assert len(row.chosen[0]["content"]) % 2 == 0 and len(row.rejected[0]["content"]) % 2 == 1
        assert row.chosen != row.rejected


def test_dpo_falls_back_to_preferences_and_tracks(tracking, tiny_model_dir, tmp_path):
    # A random model solves no arithmetic: no (pass, fail) pairs, so DPO trains on preferences/ and says so.
    data = make_preferences(make_arith_data(tmp_path / "data", n_sft=4, n_rl=16, n_eval=8), n_train=16, n_test=4)
    out = run_dpo(load_recipe("tiny", SMALL), data, tiny_model_dir, tmp_path / "dpo")

    assert out == tmp_path / "dpo" / "model"
    assert (tmp_path / "dpo" / "rejection_sampled" / "pairs" / "train.parquet").is_file()  # sampled data kept
    model, tok, _ = starting_model(out)
    assert model.generate(**tok("What", return_tensors="pt"), max_new_tokens=3).shape[1] >= 2
    lineage = json.loads((out / "qwenflow_lineage.json").read_text())
    assert lineage["pairs_source"] == "preferences" and lineage["rs/pairs"] == 0
    assert lineage["rs/arithmetic/fail"] == 16 * 4 and "exact_match_after" in lineage
    run = mlflow.search_runs(
        experiment_names=["qwenflow-tiny"], filter_string="tags.`qwenflow.stage` = 'dpo'", output_format="list"
    )[0]
    assert run.data.tags["dpo.pairs_source"] == "preferences"
    assert "eval/arithmetic/exact_match_before" in run.data.metrics
    assert "eval/arithmetic/exact_match_after" in run.data.metrics
    assert run.data.params["parent_model.sha256"] == lineage["parent_model.sha256"]
    assert run.data.params["optimizer"] == "ondare_adamw"


def test_dpo_without_any_pairs_errors_clearly(tiny_model_dir, tmp_path, tracking):
    data = make_arith_data(tmp_path / "data", n_sft=4, n_rl=4, n_eval=4)
    with pytest.raises(ValueError, match="no \\(pass, fail\\) pairs"):
        run_dpo(load_recipe("tiny", SMALL), data, tiny_model_dir, tmp_path / "dpo")
