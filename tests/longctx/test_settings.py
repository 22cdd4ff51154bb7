"""The user-facing API: load_model per setting, clear errors, and the batched (left-padded) generate path."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from qwenflow.longctx import SETTINGS, describe, load_model, register_attention


def test_load_model_applies_each_setting(tiny_model_dir):
    seen = {}
    for setting in SETTINGS:
        info = describe(load_model(tiny_model_dir, setting))
        seen[setting] = info["attn_implementation"]
        assert (info["rope"]["rope_type"] == "yarn") == ("yarn" in setting)
        assert (info["dca"] is not None) == ("dca" in setting)
    assert seen == {"none": "sdpa", "yarn": "sdpa", "yarn+dca": "dca", "yarn+dca+sparse": "sparse"}
    info = describe(load_model(tiny_model_dir, "yarn+dca"))
    assert info["rope"]["original_max_position_embeddings"] == info["dca"]["chunk_size"] == 2048


def test_bad_inputs_get_clear_errors(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown long-context setting 'dca-please'"):
        load_model(tiny_model_dir, "dca-please")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model(tmp_path, "yarn")
    with pytest.raises(ValueError, match="unknown long-context attention"):
        register_attention("flash")


def test_deployment_can_pick_dca_by_attn_implementation_alone(tiny_model_dir):
    """Serving loads with attn_implementation="dca" and no DCA config: defaults come from the trained length."""
    register_attention("dca")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="dca").eval()
    ids = torch.randint(0, 1000, (1, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        dca = model(ids).logits
    reference = load_model(tiny_model_dir, "none")
    with torch.no_grad():
        torch.testing.assert_close(dca, reference(ids).logits, atol=1e-4, rtol=1e-4)
    assert model.config.dual_chunk_attention_config["chunk_size"] == 2048


def test_left_padded_batch_generates_like_single_prompts(tiny_model_dir):
    """The evaluation harness batches prompts of different lengths with left padding."""
    model = load_model(tiny_model_dir, "yarn+dca+sparse")
    ref = load_model(tiny_model_dir, "yarn")
    g = torch.Generator().manual_seed(1)
    a, b = torch.randint(1, 1000, (1, 40), generator=g), torch.randint(1, 1000, (1, 25), generator=g)
    pad = model.config.pad_token_id
    ids = torch.cat([a, torch.cat([torch.full((1, 15), pad), b], 1)])
    mask = torch.cat([torch.ones(1, 40), torch.cat([torch.zeros(1, 15), torch.ones(1, 25)], 1)]).long()
    kw = dict(max_new_tokens=5, do_sample=False, pad_token_id=pad, eos_token_id=None)
    with torch.no_grad():
        batched = model.generate(input_ids=ids, attention_mask=mask, **kw)[:, -5:]
        singles = [ref.generate(input_ids=x, attention_mask=torch.ones_like(x), **kw)[0, -5:] for x in (a, b)]
    assert batched.tolist() == [s.tolist() for s in singles]
