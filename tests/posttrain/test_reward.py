"""Reward model: trains with TRL's RewardTrainer, scores held-out pairs, saves a sequence-classifier directory."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from pref_data import make_preferences

from qwenflow.posttrain.common import DataError, read_dataset
from qwenflow.posttrain.reward import load_reward_model, pairwise_accuracy, read_preferences, run_reward
from qwenflow.recipe import load_recipe

SMALL = [
    "model.vocab_size=1024",
    "tokenizer.vocab_size=1024",
    "reward.max_steps=30",
    "reward.global_batch_size=16",
    "reward.micro_batch_size=16",
    "reward.max_seq_len=48",
    "reward.learning_rate=1e-3",
]


def test_reward_model_learns_preference_and_is_tracked(tracking, tiny_model_dir, tmp_path):
    # An easy preference (a number beats a refusal) a 1M-parameter model learns in 30 steps; 3 broken pairs dropped.
    data = make_preferences(tmp_path / "data", rejected="I am not sure.", identical=3)
    out = run_reward(load_recipe("tiny", SMALL), data, tiny_model_dir, tmp_path / "rm")
    assert out == tmp_path / "rm" / "model"

    model, tok = load_reward_model(out)  # loads back as AutoModelForSequenceClassification
    assert type(model).__name__.endswith("ForSequenceClassification") and model.config.num_labels == 1
    assert pairwise_accuracy(model, tok, read_dataset(data, "preferences", split="test")) >= 0.9

    lineage = json.loads((out / "qwenflow_lineage.json").read_text())
    assert lineage["pairs.dropped_identical"] == 3 and lineage["reward/pairwise_accuracy"] >= 0.9
    run = mlflow.search_runs(
        experiment_names=["qwenflow-tiny"], filter_string="tags.`qwenflow.stage` = 'reward'", output_format="list"
    )[0]
    assert run.data.metrics["reward/pairwise_accuracy"] >= 0.9
    assert run.data.params["data.preferences.sha256"] == lineage["data.preferences.sha256"]
    assert "parent_model.sha256" in run.data.params


def test_bad_preferences_are_rejected_clearly(tmp_path):
    make_preferences(tmp_path / "a", n_train=4, n_test=2)
    df = pd.read_parquet(tmp_path / "a" / "preferences" / "train.parquet").drop(columns=["rejected"])
    df.to_parquet(tmp_path / "a" / "preferences" / "train.parquet")
    with pytest.raises(DataError, match=r"missing column\(s\) \['rejected'\]"):
        read_preferences(tmp_path / "a", 0.1)

    make_preferences(tmp_path / "b", n_train=4, n_test=2)
    df = pd.read_parquet(tmp_path / "b" / "preferences" / "train.parquet")
    df["rejected"] = df["chosen"]
    df.to_parquet(tmp_path / "b" / "preferences" / "train.parquet")
    with pytest.raises(DataError, match="chosen == rejected"):
        read_preferences(tmp_path / "b", 0.1)

    make_preferences(tmp_path / "c", n_train=4, n_test=2)
    df = pd.read_parquet(tmp_path / "c" / "preferences" / "train.parquet")
    df["chosen"] = [[{"role": "robot", "content": "5"}]] * len(df)
    df.to_parquet(tmp_path / "c" / "preferences" / "train.parquet")
    with pytest.raises(DataError, match="unknown role 'robot'"):
        read_preferences(tmp_path / "c", 0.1)
