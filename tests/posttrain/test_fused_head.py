"""TRL's fused LM head scores only labelled positions on CPU once qwenflow switches it to compact, with the same
loss and gradients as TRL's score-every-position path."""

import torch
import trl.trainer.utils as trl_utils
from transformers import Qwen2Config, Qwen2ForCausalLM
from trl.trainer.utils import add_fused_lm_head

from qwenflow.posttrain.fused_head import compact_fused_lm_head


def _loss_and_grads(model, ids, labels):
    model.zero_grad()
    out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    out.loss.backward()
    return out.loss.detach(), out.log_probs.detach(), [p.grad.clone() for p in model.parameters()]


def test_compact_head_matches_full_head_on_cpu(monkeypatch):
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(cfg)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    ids = torch.randint(0, 97, (3, 12))
    labels = ids.clone()
    labels[:, :9] = -100  # assistant-only loss: a few labelled tokens per row
    labels[1, :] = -100  # and one row with none

    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)  # restored after the test
    full = _loss_and_grads(model, ids, labels)
    compact_fused_lm_head()
    assert trl_utils._use_triton(torch.device("cpu")) is True
    compact = _loss_and_grads(model, ids, labels)

    torch.testing.assert_close(compact[0], full[0])
    mask = labels[:, 1:] != -100
    torch.testing.assert_close(compact[1][mask], full[1][mask])
    assert torch.count_nonzero(compact[1][~mask]) == 0
    for a, b in zip(compact[2], full[2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
