"""Every post-training stage moves its own held-out measure, on one small chain (a 2-layer, 64-wide model on sums
and differences of 0..19): SFT raises exact match; the reward model ranks held-out pairs right for every criterion;
DPO on the SFT model's own samples (split by the verifier, ranked by the reward model) raises the policy's
implicit-reward accuracy on held-out pairs without losing exact match; GRPO with the verifier and the reward model
trains without reward hacking (its gain on this small chain is within noise: see the GRPO test).

These assert directions on a smaller run than the README's (whose sizes are in recipes/tiny.yaml), so that a stage
that stops learning fails CI. They must pass under both CPU kinds' numerics: fp32 (AVX2-only machines) and bf16
autocast (AVX512-BF16 ones); `QWENFLOW_CPU_BF16=1` / `=0` forces either on any CPU.
"""

from __future__ import annotations

import json

import mlflow
import pytest
from arith_data import make_arith_data
from pref_data import make_criteria_preferences

from qwenflow.artifacts import read_lineage
from qwenflow.models import io
from qwenflow.posttrain import common
from qwenflow.recipe import load_recipe

SMALL = [
    "model.vocab_size=1024",
    "tokenizer.vocab_size=1024",
    "model.hidden_size=64",
    "model.num_layers=2",
    "model.intermediate_size=192",
]
# Measured (held-out exact match on 200 problems, 2 contended cores): 300 steps reach ~9% under either numerics,
# 600 steps 35.5% (fp32) / 25.5% (bf16): mid competence, which leaves DPO and GRPO room.
SFT = [
    "sft.max_steps=600",
    "sft.global_batch_size=32",
    "sft.micro_batch_size=32",
    "sft.learning_rate=3e-3",
    "sft.min_learning_rate=3e-4",
    "sft.warmup_ratio=0.03",
    "sft.max_seq_len=64",
]
REWARD = [
    "reward.max_steps=60",
    "reward.global_batch_size=32",
    "reward.micro_batch_size=32",
    "reward.learning_rate=1e-3",
    "reward.max_seq_len=96",
]
# DPO needs many distinct pairs to generalise: from 100 prompts (83 pairs) held-out implicit-reward accuracy stayed
# at 0.52 and exact match fell at lr 1e-3 (35.5% -> 17.5%). From all 600 training prompts (1650 pairs), 60 steps of
# 32: 0.586 +- 0.021 at 3e-4 (exact match 35.5% -> 34.5%); 0.618 at 1e-3 but exact match fell to 27.5%; beta 0.5
# at 5e-4: 0.623 (exact match 37.5%) in fp32, 0.561 in bf16 (0.53-0.55 at beta 0.1 there). With the chosen answers'
# NLL added at weight 1 (the tiny recipe's dpo.sft_loss_weight) the four tests pass under fp32 and bf16 alike.
DPO = [
    "dpo.max_steps=60",
    "dpo.global_batch_size=32",
    "dpo.micro_batch_size=32",
    "dpo.learning_rate=5e-4",
    "dpo.beta=0.5",
    "dpo.sft_loss_weight=1.0",
    "dpo.max_seq_len=64",
    "dpo.max_prompts=600",
    "dpo.samples_per_prompt=8",
    "dpo.max_new_tokens=4",
    "dpo.min_pairs=8",
]
# With the reward model at weight 1 and per-group reward scaling, GRPO climbed the reward model and lost exact match
# (34.5% -> 30.5%, verifier reward 0.43 -> 0.375); at weight 0.5 with batch scaling (grpo.py): 34.5% -> 39.5%.
GRPO = [
    "grpo.max_steps=60",
    "grpo.reward_weights={verifier: 1.0, reward_model: 0.5}",
    "grpo.global_batch_size=32",
    "grpo.micro_batch_size=32",
    "grpo.num_generations=4",
    "grpo.max_completion_length=4",
    "grpo.max_seq_len=64",
    "grpo.learning_rate=1e-4",
    "grpo.warmup_ratio=0.1",
    "grpo.temperature=0.7",
    "grpo.min_reward_model_accuracy=0",
]


@pytest.fixture(scope="module")
def recipe():
    return load_recipe("tiny", SMALL + SFT + REWARD + DPO + GRPO)


@pytest.fixture(scope="module")
def chain_tracking(mlflow_server, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        mp.setenv("QWENFLOW_HOME", str(tmp_path_factory.mktemp("qwenflow_home")))
        mp.delenv("QWENFLOW_PARENT_RUN_ID", raising=False)
        yield mlflow_server


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_arith_data(tmp_path_factory.mktemp("chain"), n_sft=500, n_eval=200, lo=0, hi=19, rl_all=True)
    return make_criteria_preferences(root)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tiny_tokenizer_dir, recipe):
    from qwenflow.models import build_model
    from qwenflow.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_tokenizer_dir)
    model = build_model(recipe.model, seed=0, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return io.save(
        model, tokenizer=tok, out_dir=tmp_path_factory.mktemp("base"), recipe=recipe, lineage={"stage": "init"}
    )


@pytest.fixture(scope="module")
def sft_dir(chain_tracking, recipe, data, base_dir, tmp_path_factory):
    from qwenflow.posttrain.sft import run_sft

    return run_sft(recipe, data, base_dir, tmp_path_factory.mktemp("sft"))


@pytest.fixture(scope="module")
def reward_dir(chain_tracking, recipe, data, sft_dir, tmp_path_factory):
    from qwenflow.posttrain.reward import run_reward

    return run_reward(recipe, data, sft_dir, tmp_path_factory.mktemp("rm"))


@pytest.fixture(scope="module")
def dpo_dir(chain_tracking, recipe, data, sft_dir, reward_dir, tmp_path_factory):
    from qwenflow.posttrain.dpo import run_dpo

    return run_dpo(recipe, data, sft_dir, tmp_path_factory.mktemp("dpo"), reward_model_dir=reward_dir)


def _stage_run(tracking_uri, recipe, stage):
    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.search_runs(
        experiment_names=[recipe.tracking.experiment],
        output_format="list",
        filter_string=f"tags.qwenflow.stage = '{stage}'",
        order_by=["start_time DESC"],
    )[0]


def test_sft_raises_exact_match_on_held_out_arithmetic(chain_tracking, recipe, data, sft_dir):
    lineage = read_lineage(sft_dir)
    gain = lineage["exact_match_gain"]["arithmetic"]
    print("SFT", json.dumps(gain))
    assert gain["n"] == 200 and gain["before"] == 0.0  # a random-init model writes no correct sums
    assert gain["after"] >= 0.15 and gain["gain"] > 3 * gain["gain_stderr"], f"SFT reached only {gain}"
    # the model dir is complete and usable: safetensors, tokenizer, recipe, lineage with the parent's hash
    assert (sft_dir / "model.safetensors").is_file() and (sft_dir / "qwenflow_recipe.yaml").is_file()
    assert len(lineage["parent_model.sha256"]) == 64 and "data.sft.sha256" in lineage
    model, tok, _ = common.starting_model(sft_dir)
    acc, _ = common.exact_match(model, tok, common.read_eval(data)["arithmetic"])
    assert acc == pytest.approx(gain["after"])
    # tracked: params with hashes, before/after metrics with standard errors, sample tables
    run = _stage_run(chain_tracking, recipe, "sft")
    m = run.data.metrics
    assert m["eval/arithmetic/exact_match_after"] == pytest.approx(gain["after"])
    assert m["eval/arithmetic/exact_match_gain_stderr"] == pytest.approx(gain["gain_stderr"])
    assert run.data.params["parent_model.sha256"] == lineage["parent_model.sha256"]
    assert "sft/train/loss" in m
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "samples")}
    assert {"samples/before.json", "samples/after.json"} <= arts
    table = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/samples/after.json"))
    assert "completion" in table["columns"]


def test_reward_model_ranks_held_out_pairs_by_every_criterion(chain_tracking, recipe, reward_dir):
    lineage = read_lineage(reward_dir)
    per = {c: lineage[f"reward/pairwise_accuracy/{c}"] for c in ("correct", "concise", "on_topic", "format")}
    print("RM", json.dumps(per), lineage["reward/pairwise_accuracy"])
    assert lineage["reward/pairwise_accuracy"] >= 0.85
    for c in ("concise", "on_topic", "format"):
        assert per[c] >= 0.9, f"reward model ranks only {per[c]:.0%} of held-out {c} pairs right"
    # correctness needs the arithmetic itself (this model: 79% after 60 steps); the untrained head is at chance
    assert per["correct"] >= 0.7 and per["correct"] > lineage["reward/pairwise_accuracy_before/correct"] + 0.1, per
    m = _stage_run(chain_tracking, recipe, "reward").data.metrics
    assert all(m[f"reward/pairwise_accuracy/{c}"] == pytest.approx(v) for c, v in per.items())


def test_dpo_raises_held_out_preference_accuracy_without_losing_exact_match(dpo_dir):
    lin = read_lineage(dpo_dir)
    before, after = lin["heldout_before"], lin["heldout_after"]
    gain = lin["exact_match_gain"]["arithmetic"]
    print("DPO", json.dumps(before), json.dumps(after), json.dumps(gain), lin["pairs_source"], lin["pairs"])
    assert lin["pairs_source"] == "rejection_sampling" and "reward_model" in lin
    assert before["implicit_reward_accuracy"] == 0.5  # the policy is its own reference before training
    assert before["pairs"] >= 300  # every distinct wrong sample of the held-out prompts, against a right one
    assert after["implicit_reward_accuracy"] >= max(0.54, 0.5 + 2 * after["implicit_reward_accuracy_stderr"]), after
    assert after["implicit_reward_margin"] > 0, after
    assert gain["gain"] >= -2 * gain["gain_stderr"] - 1e-9, gain  # exact match not lost


def test_grpo_trains_on_verifier_and_reward_model_without_hacking(
    chain_tracking, recipe, data, dpo_dir, reward_dir, tmp_path
):
    from qwenflow.posttrain.grpo import run_grpo

    out = run_grpo(recipe, data, dpo_dir, tmp_path / "grpo", reward_model_dir=reward_dir)
    lin = read_lineage(out)
    gain = lin["exact_match_gain"]["arithmetic"]
    print("GRPO", json.dumps(gain), {k: v for k, v in lin.items() if k.startswith(("reward_", "sampled", "heldout"))})
    assert lin["reward_model"] == str(reward_dir)
    # GRPO's gain on this small chain is within its noise (measured +0 to +5 points on 200 problems, standard error
    # ~3; 100 steps at 2e-4: +1), so this test asserts that it trains and does not hack its reward, not the gain:
    # the policy moved, exact match did not fall beyond two standard errors, ...
    from safetensors.torch import load_file

    moved = max(
        (a - b).abs().max().item()
        for a, b in zip(
            load_file(out / "model.safetensors").values(), load_file(dpo_dir / "model.safetensors").values()
        )
    )
    assert moved > 1e-4, moved
    assert gain["gain"] >= -2 * gain["gain_stderr"], gain
    # no reward hacking: the verifier's reward of sampled answers to the held-out prompts does not fall (the training
    # batches' rewards are not comparable over time: variance ordering changes which prompts they hold)
    before, after = lin["sampled_reward_before"]["arithmetic"], lin["sampled_reward_after"]["arithmetic"]
    assert after >= before - 2 * (before * (1 - before) / 800) ** 0.5, (before, after)  # 200 prompts x 4 samples
    m = _stage_run(chain_tracking, recipe, "grpo").data.metrics
    assert "grpo/rewards/reward_model/mean" in m and "grpo/rewards/verifier/mean" in m
