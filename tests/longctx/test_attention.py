"""Exactness of DCA and sparse prefill against standard attention on tiny random Qwen2 models."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from qwenflow.longctx import SparseConfig, configure
from qwenflow.longctx.sparse import block_sparse_prefill, dense_attention

TRAINED = 128


def tiny_config():
    return Qwen2Config(
        vocab_size=128,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=TRAINED,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )


@pytest.fixture(scope="module")
def weights():
    torch.manual_seed(0)
    return Qwen2ForCausalLM(tiny_config()).state_dict()


def logits(weights, setting, ids, **options):
    config = configure(tiny_config(), setting, trained=TRAINED, **options)
    model = Qwen2ForCausalLM(config).eval()
    model.load_state_dict(weights)
    assert model.config._attn_implementation == config._attn_implementation
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("length", [40, TRAINED])  # one chunk; two chunks that still fit the trained length
def test_dca_equals_standard_attention_inside_trained_length(weights, length):
    ids = torch.randint(0, 128, (2, length), generator=torch.Generator().manual_seed(1))
    yarn, dca = logits(weights, "yarn", ids), logits(weights, "yarn+dca", ids)
    torch.testing.assert_close(dca, yarn, atol=1e-5, rtol=1e-5)


def test_dca_chunked_form_equals_standard_attention_inside_trained_length():
    """The chunked computation itself (which dca_core skips up to the trained length) is exact there too."""
    from qwenflow.longctx.dca import dca_chunked, dca_core
    from qwenflow.longctx.rope import inv_freq_for, rerotate

    module = _Module(True)
    c = module.config.dual_chunk_attention_config["chunk_size"]
    g = torch.Generator().manual_seed(8)
    q, k, v = (torch.randn(1, h, c, 16, generator=g) for h in (4, 2, 2))
    pos = torch.arange(c)
    inv = inv_freq_for(module)
    q, k = rerotate(q, pos, inv), rerotate(k, pos, inv)
    torch.testing.assert_close(
        dca_chunked(module, q, k, v, 0.25), dca_core(module, q, k, v, 0.25), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        dca_chunked(module, q[:, :, -3:], k, v, 0.25), dca_core(module, q[:, :, -3:], k, v, 0.25), atol=1e-5, rtol=1e-5
    )  # decoding-shaped: a few queries at the end


def test_dca_changes_attention_beyond_trained_length_and_bounds_distances(weights):
    ids = torch.randint(0, 128, (1, 4 * TRAINED), generator=torch.Generator().manual_seed(2))
    yarn, dca = logits(weights, "yarn", ids), logits(weights, "yarn+dca", ids)
    torch.testing.assert_close(dca[:, :TRAINED], yarn[:, :TRAINED], atol=1e-5, rtol=1e-5)  # causal: prefix same
    assert (dca[:, TRAINED:] - yarn[:, TRAINED:]).abs().max() > 1e-3


def test_dca_decoding_with_cache_matches_full_prefill(weights):
    """Greedy decoding token by token (KV cache) sees the same logits as one forward over the whole text."""
    ids = torch.randint(0, 128, (1, 3 * TRAINED), generator=torch.Generator().manual_seed(3))
    config = configure(tiny_config(), "yarn+dca", trained=TRAINED)
    model = Qwen2ForCausalLM(config).eval()
    model.load_state_dict(weights)
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids[:, :-4], use_cache=True)
        cache, steps = out.past_key_values, []
        for t in range(ids.shape[1] - 4, ids.shape[1]):
            out = model(ids[:, t : t + 1], cache=cache, use_cache=True)
            cache = out.past_key_values
            steps.append(out.logits[:, -1])
    torch.testing.assert_close(torch.stack(steps, 1), full[:, -4:], atol=1e-4, rtol=1e-4)


def test_sparse_is_exact_below_threshold(weights):
    ids = torch.randint(0, 128, (1, 3 * TRAINED), generator=torch.Generator().manual_seed(4))
    sparse = SparseConfig(block_size=16, top_k=1, local_blocks=1, threshold=4 * TRAINED)
    torch.testing.assert_close(
        logits(weights, "yarn+dca+sparse", ids, sparse=sparse), logits(weights, "yarn+dca", ids), atol=0, rtol=0
    )


def test_sparse_selecting_every_block_equals_dense(weights):
    ids = torch.randint(0, 128, (1, 4 * TRAINED), generator=torch.Generator().manual_seed(5))
    sparse = SparseConfig(block_size=16, top_k=10_000, threshold=TRAINED)
    torch.testing.assert_close(
        logits(weights, "yarn+dca+sparse", ids, sparse=sparse), logits(weights, "yarn+dca", ids), atol=1e-4, rtol=1e-4
    )


class _Module:  # what an attention function reads from its module
    def __init__(self, dca: bool):
        self.config = configure(tiny_config(), "yarn+dca" if dca else "none", trained=TRAINED)


def test_sparse_approximates_dense_when_attention_is_concentrated():
    """Real attention is peaked: plant, for each query block, a far-away key block it matches strongly. The
    pooled scores must find it, and the sparse output must then be close to dense attention. (Without DCA: DCA
    re-rotates q/k, which would scramble planted directions; its sparse path is checked by the test above and by
    passkey accuracy in the long-context report.)"""
    g = torch.Generator().manual_seed(6)
    length, d, blk = 1024, 16, 16
    q = torch.randn(1, 4, length, d, generator=g) * 0.3
    k = torch.randn(1, 2, length, d, generator=g) * 0.3
    v = torch.randn(1, 2, length, d, generator=g)
    n_blk = length // blk
    direction = torch.randn(n_blk, d, generator=g)
    direction = 6 * direction / direction.norm(dim=-1, keepdim=True)
    for qb in range(8, n_blk):
        target = int(torch.randint(1, qb - 4, (1,), generator=g))  # outside sinks and local window
        q[:, :, qb * blk : (qb + 1) * blk] += direction[qb]
        k[:, :, target * blk : (target + 1) * blk] += direction[qb]
    module = _Module(False)
    dense = dense_attention(module, q, k, v, d**-0.5)
    sparse = block_sparse_prefill(module, q, k, v, d**-0.5, SparseConfig(block_size=blk, top_k=4, threshold=1))
    uniform_guess = block_sparse_prefill(
        module, q, k, v, d**-0.5, SparseConfig(block_size=blk, top_k=0, local_blocks=8, threshold=1)
    )
    err = (sparse - dense).norm() / dense.norm()
    assert err < 0.1, err
    assert err < 0.5 * (uniform_guess - dense).norm() / dense.norm()  # the top-k choice is what makes it close


def test_dca_matches_a_naive_reference_over_many_chunks():
    """Beyond the trained length: every (query, key) pair scored at the paper's remapped positions, one pair at a
    time from un-rotated vectors, against the chunked implementation fed RoPE'd vectors (5 chunks + a partial)."""
    from qwenflow.longctx.dca import dca_core
    from qwenflow.longctx.rope import inv_freq_for, rerotate

    module = _Module(True)
    c = module.config.dual_chunk_attention_config["chunk_size"]
    s = c - module.config.dual_chunk_attention_config["local_size"]
    g = torch.Generator().manual_seed(7)
    length, d = 5 * s + 7, 16
    q, k, v = (torch.randn(1, h, length, d, generator=g) for h in (4, 2, 2))
    inv = inv_freq_for(module)
    pos = torch.arange(length)
    out = dca_core(module, rerotate(q, pos, inv), rerotate(k, pos, inv), v, d**-0.5)[0]  # (L, H, D)

    kr = rerotate(k, pos % s, inv).repeat_interleave(2, 1)[0]  # keys at j mod s
    vr = v.repeat_interleave(2, 1)[0]
    for i in [0, s - 1, s, s + 3, 2 * s + 40, 4 * s + 1, length - 1]:
        chunk_q = i // s
        qpos = torch.tensor(
            [
                i % s if j // s == chunk_q else min(s + i % s, c - 1) if j // s == chunk_q - 1 else c - 1
                for j in range(i + 1)
            ]
        )
        qi = torch.stack(
            [rerotate(q[0, :, i : i + 1], qpos[j : j + 1], inv)[:, 0] for j in range(i + 1)], 1
        )  # (H, i+1, D)
        scores = (qi * kr[:, : i + 1]).sum(-1) * d**-0.5
        assert int((qpos - pos[: i + 1] % s).max()) <= c - 1  # no distance beyond the trained length
        ref = torch.einsum("hj,hjd->hd", scores.softmax(-1), vr[:, : i + 1])
        torch.testing.assert_close(out[i], ref, atol=1e-4, rtol=1e-4)
