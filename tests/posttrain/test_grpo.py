"""GRPO: runs with verifier + format rewards and a KL reference, logs what the report asks for, orders prompts by
reward variance, and handles failing reward functions as the recipe says."""

from __future__ import annotations

import json
import math

import mlflow
import pandas as pd
import pytest
from arith_data import make_arith_data

from qwenflow.artifacts import read_lineage
from qwenflow.posttrain import common
from qwenflow.posttrain.grpo import VarianceOrderedSampler, VarianceTracker, load_prompts, run_grpo
from qwenflow.recipe import RecipeError, load_recipe
from qwenflow.verifiers.guard import RewardFunctionError

SMALL = [
    "model.vocab_size=1024",
    "tokenizer.vocab_size=1024",
    "grpo.global_batch_size=16",
    "grpo.micro_batch_size=16",
    "grpo.num_generations=4",
    "grpo.max_completion_length=4",
    "grpo.max_seq_len=64",
    "grpo.learning_rate=3e-5",
]


@pytest.fixture(scope="module")
def arith(tmp_path_factory):
    return make_arith_data(tmp_path_factory.mktemp("arith"), n_sft=8, n_rl=32, n_eval=16)


def test_grpo_runs_and_logs_rewards_kl_lengths_and_zero_variance_share(tracking, arith, tiny_model_dir, tmp_path):
    recipe = load_recipe(
        "tiny", SMALL + ["grpo.max_steps=3", "grpo.beta=0.04", "grpo.reward_weights={verifier: 1.0, format: 0.5}"]
    )
    out = run_grpo(recipe, arith, tiny_model_dir, tmp_path / "grpo")
    lin = read_lineage(out)
    assert (out / "model.safetensors").is_file()
    assert math.isfinite(lin["reward_start"]) and math.isfinite(lin["reward_end"])
    assert 0.0 <= lin["zero_variance_prompts"] <= 1.0
    assert lin["generated_tokens"] > 0 and lin["generation_seconds"] > 0
    assert set(lin["exact_match_before"]) == {"arithmetic"} and set(lin["exact_match_after"]) == {"arithmetic"}
    assert (
        0.0 <= lin["sampled_reward_before"]["arithmetic"] <= 1.0
        and 0.0 <= lin["sampled_reward_after"]["arithmetic"] <= 1.0
    )
    mlflow.set_tracking_uri(tracking)
    run = mlflow.search_runs(
        experiment_names=[recipe.tracking.experiment],
        filter_string="tags.qwenflow.stage = 'grpo'",
        output_format="list",
    )[0]
    m = run.data.metrics
    for key in (
        "grpo/rewards/verifier/mean",
        "grpo/rewards/verifier/std",
        "grpo/rewards/format/mean",
        "grpo/rewards/format/std",
        "grpo/kl",
        "grpo/completions/mean_length",
        "grpo/frac_reward_zero_std",
        "eval/arithmetic/exact_match_before",
        "eval/arithmetic/exact_match_after",
        "eval/arithmetic/sampled_reward_before",
        "eval/arithmetic/sampled_reward_after",
    ):
        assert key in m, f"{key} not logged; have {sorted(m)}"
    assert run.data.params["parent_model.sha256"] == lin["parent_model.sha256"]


def test_sampler_visits_unseen_then_highest_variance_prompts_first():
    tracker = VarianceTracker({"verifier": 1.0})
    # prompts 0..3 scored: group rewards give variances 0, 0.25, 0, 0.1875; prompts 4, 5 never scored
    tracker.record("verifier", [0, 0, 1, 1, 2, 2, 3, 3, 3, 3], [1, 1, 0, 1, 0, 0, 1, 0, 0, 0])
    assert tracker.variance == {0: 0.0, 1: 0.25, 2: 0.0, 3: pytest.approx(0.1875)}
    s = VarianceOrderedSampler(6, mini_repeat_count=2, batch_size=3, repeat_count=1, tracker=tracker)
    idx = list(s)
    assert len(idx) == len(s) == 12
    order = idx[::2]
    assert set(order[:2]) == {4, 5} and order[2:4] == [1, 3] and set(order[4:]) == {0, 2}
    assert idx[0] == idx[1]  # each prompt repeated num_generations times in a row
    assert tracker.zero_variance_share() == 0.5


def test_failing_reward_function_zero_goes_on_stop_stops(tracking, tmp_path, tiny_model_dir):
    root = make_arith_data(tmp_path / "data", n_sft=8, n_rl=8, n_eval=4)
    df = pd.read_parquet(root / "rl/prompts.parquet")
    df["task"] = "poetry"  # no verifier knows it: the verifier raises every call
    df.to_parquet(root / "rl/prompts.parquet")
    base = SMALL + ["grpo.max_steps=1", "grpo.reward_weights={verifier: 1.0, format: 1.0}"]
    out = run_grpo(load_recipe("tiny", base + ["grpo.reward_on_error=zero"]), root, tiny_model_dir, tmp_path / "z")
    assert read_lineage(out)["reward_failures"]["verifier"]["raised"] >= 1
    with pytest.raises(RewardFunctionError, match="no verifier for task 'poetry'.*reward_on_error=stop"):
        run_grpo(load_recipe("tiny", base + ["grpo.reward_on_error=stop"]), root, tiny_model_dir, tmp_path / "s")


def test_bad_rl_data_and_recipe_get_clear_errors(tmp_path, tiny_model_dir):
    tok = common.load_chat_tokenizer(tiny_model_dir)
    (tmp_path / "rl").mkdir()
    pd.DataFrame({"question": ["What is 1 + 1?"], "answer": ["2"]}).to_parquet(tmp_path / "rl/prompts.parquet")
    with pytest.raises(common.DataError, match=r"missing column\(s\) \['prompt', 'task'\]"):
        load_prompts(tmp_path, tok, 100)
    long = [{"role": "user", "content": "What is 1 + 1? " * 50}]
    short = [{"role": "user", "content": "What is 1 + 1?"}]
    pd.DataFrame({"prompt": [long, short], "task": "arithmetic", "answer": "2"}).to_parquet(
        tmp_path / "rl/prompts.parquet"
    )
    rows, dropped = load_prompts(tmp_path, tok, 60)
    assert dropped == 1 and len(rows) == 1 and list(rows["prompt_idx"]) == [0]
    with pytest.raises(
        common.DataError, match="all 2 RL prompts are longer than 5 tokens; the limit is the context minus"
    ):
        load_prompts(tmp_path, tok, 5)
    with pytest.raises(RecipeError, match="unknown reward source"):
        load_recipe("tiny", ["grpo.reward_weights={verifier: 1.0, vibes: 2.0}"])


def test_reward_model_scores_prompt_plus_completion(tiny_model_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from qwenflow.posttrain.grpo import RewardModelScore, reward_functions

    cfg = AutoConfig.from_pretrained(tiny_model_dir, num_labels=1)
    rm = AutoModelForSequenceClassification.from_config(cfg)
    rm.save_pretrained(tmp_path / "rm")
    common.load_chat_tokenizer(tiny_model_dir).save_pretrained(tmp_path / "rm")
    score = RewardModelScore(tmp_path / "rm")
    prompts = [[{"role": "user", "content": "What is 1 + 1?"}]] * 2
    out = score([[{"role": "assistant", "content": "2"}], [{"role": "assistant", "content": "three"}]], prompts)
    assert len(out) == 2 and all(math.isfinite(x) for x in out) and out[0] != out[1]
    spec = load_recipe("tiny", ["grpo.reward_weights={reward_model: 0.5, verifier: 1.0}"]).grpo
    funcs, weights, guards = reward_functions(spec, tmp_path / "rm")
    assert [f.__name__ for f in funcs] == ["reward_model", "verifier"] and weights == [0.5, 1.0]
    funcs, weights, _ = reward_functions(spec, None)  # no reward model given: verifiers only, said in the log
    assert [f.__name__ for f in funcs] == ["verifier"]
    # a reward model barely better than chance on its held-out pairs is left out (GRPO would climb its noise)
    (tmp_path / "rm" / "qwenflow_lineage.json").write_text(json.dumps({"reward/pairwise_accuracy": 0.545}))
    funcs, _, _ = reward_functions(spec, tmp_path / "rm")
    assert [f.__name__ for f in funcs] == ["verifier"]
    trusting = load_recipe(
        "tiny", ["grpo.reward_weights={reward_model: 0.5, verifier: 1.0}", "grpo.min_reward_model_accuracy=0"]
    ).grpo
    assert [f.__name__ for f in reward_functions(trusting, tmp_path / "rm")[0]] == ["reward_model", "verifier"]
