"""Dual Chunk Attention (An et al. 2024, "Training-Free Long-Context Scaling of Large Language Models").

The sequence is cut into chunks of s = chunk_size - local_size tokens (chunk_size = the trained length c, the
name vLLM and Qwen's `dual_chunk_attention_config` use). Keys sit at position j mod s; each query is scored
three ways, and one softmax runs over all three parts (ChunkLlama and vLLM merge them by log-sum-exp):
  intra-chunk   (keys of its own chunk, causal): query at i mod s          -> distances as in training
  successive    (keys of the previous chunk):   query at min(s + i mod s, c - 1) -> exact within local_size
  inter-chunk   (all older chunks):             query at c - 1             -> distances in [local_size, c - 1]
No relative distance exceeds c - 1, and for sequences up to c tokens every distance is the true one, so DCA
equals standard attention inside the trained length (tests/longctx checks this).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .rope import inv_freq_for, rerotate
from .yarn import trained_length


def block_size_for(trained: int) -> int:
    """Sparse-prefill block size for a model trained at `trained` tokens: 64, or 32 for tiny models."""
    return 64 if trained >= 1024 else 32


def default_dca(trained: int, block: int = 64) -> dict:
    """DCA settings for a model trained at `trained` tokens. local_size: the window across a chunk boundary kept
    at exact distances (ChunkLlama and Qwen use 1/8-1/32 of the trained length), rounded so the chunk length is a
    whole number of sparse blocks."""
    w = max(trained // 8, 1)
    if trained > 64:
        w += (trained - w) % block
    return {"chunk_size": trained, "local_size": w, "original_max_position_embeddings": trained}


def dca_params(config) -> tuple[int, int]:
    """(chunk_size c, chunk length s) from config.dual_chunk_attention_config (Qwen's and vLLM's key), or the
    defaults for the config's trained length when a deployment only set attn_implementation="dca"."""
    cfg = getattr(config, "dual_chunk_attention_config", None)
    if not cfg:
        trained = trained_length(config)
        cfg = config.dual_chunk_attention_config = default_dca(trained, block_size_for(trained))
    c, w = int(cfg["chunk_size"]), int(cfg["local_size"])
    if not 0 < w < c:
        raise ValueError(f"dual_chunk_attention_config: need 0 < local_size ({w}) < chunk_size ({c})")
    return c, c - w


def query_positions(pos: torch.Tensor, c: int, s: int) -> dict[str, torch.Tensor]:
    """The three remapped query positions of DCA for absolute positions `pos`."""
    intra = pos % s
    return {"intra": intra, "succ": torch.clamp(intra + s, max=c - 1), "inter": torch.full_like(pos, c - 1)}


def per_sequence(core, query, key, value, kwargs: dict) -> torch.Tensor:
    """Run `core(q, k, v) -> (B, Q, H, D)` on the unpadded part of each row. Chunk boundaries depend on each
    sequence's own positions, so left-padded rows (batched generate) are handled one at a time; the pad count of a
    row is read from its last position id (transformers numbers real tokens 0..n-1 after the pads)."""
    q_len, k_len = query.shape[2], key.shape[2]
    pos = kwargs.get("position_ids")
    if pos is None or pos.shape[0] == 1 and int(pos[0, -1]) == k_len - 1:
        return core(query, key, value)
    pads = (k_len - 1 - pos[:, -1]).tolist()
    if any(p < 0 for p in pads):
        raise ValueError(
            "DCA/sparse attention need positions 0..n-1 per sequence (packed sequences are not "
            "supported); run one prompt per row"
        )
    if not any(pads):
        return core(query, key, value)
    out = query.new_zeros(query.shape[0], q_len, query.shape[1], query.shape[3])
    for row, pad in enumerate(pads):
        q_from = max(0, pad - (k_len - q_len))  # pad positions among the queries (prefill) get zeros
        out[row : row + 1, q_from:] = core(
            query[row : row + 1, :, q_from:], key[row : row + 1, :, pad:], value[row : row + 1, :, pad:]
        )
    return out


def dca_core(module, query, key, value, scaling: float) -> torch.Tensor:
    """query (B, H, Q, D) rotated at absolute positions k_len-Q..k_len-1; key/value (B, Hkv, K, D).
    Returns (B, Q, H, D) like transformers' attention functions.

    Up to the trained length c every distance DCA uses is the true one, so it is standard causal attention there:
    one plain SDPA call (the chunked form computes the same numbers ~5x slower; tests compare the two)."""
    c, _ = dca_params(module.config)
    q_len, k_len = query.shape[2], key.shape[2]
    if k_len > c:
        return dca_chunked(module, query, key, value, scaling)
    k_pos = torch.arange(k_len, device=query.device)
    mask = k_pos[None, :] <= k_pos[k_len - q_len :, None]
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling, enable_gqa=True).transpose(
        1, 2
    )


def dca_chunked(module, query, key, value, scaling: float) -> torch.Tensor:
    """dca_core's general form, for any length.

    Per query chunk, one fused SDPA call: the three remapped queries are laid side by side ([intra | successive |
    inter], width 3D) and each key is placed in the slot of its part (zeros elsewhere), so q3 . k3 is exactly the
    score of the part that key belongs to, and one softmax over all keys equals the log-sum-exp merge of the three
    parts. This avoids materialising scores (the plain-torch merge was ~10x slower than SDPA on CPU)."""
    c, s = dca_params(module.config)
    b, h, q_len, d = query.shape
    k_len = key.shape[2]
    inv_freq = inv_freq_for(module)
    k_pos = torch.arange(k_len, device=query.device)
    q_pos = k_pos[k_len - q_len :]
    keys = rerotate(key, k_pos % s - k_pos, inv_freq)
    out = torch.empty_like(query)
    q_chunk = q_pos // s
    for n in torch.unique(q_chunk).tolist():
        rows = (q_chunk == n).nonzero().squeeze(1)
        qn, pn = query[..., rows, :], q_pos[rows]
        remap = query_positions(pn, c, s)
        q3 = torch.cat([rerotate(qn, remap[part] - pn, inv_freq) for part in ("intra", "succ", "inter")], dim=-1)
        start, end = n * s, int(pn[-1]) + 1
        k3 = keys.new_zeros(*keys.shape[:2], end, 3 * d)
        k3[..., start:end, :d] = keys[..., start:end, :]
        k3[..., max(0, start - s) : start, d : 2 * d] = keys[..., max(0, start - s) : start, :]
        k3[..., : max(0, start - s), 2 * d :] = keys[..., : max(0, start - s), :]
        mask = k_pos[:end][None, :] <= pn[:, None]  # causal; older chunks are always visible
        out[..., rows, :] = F.scaled_dot_product_attention(
            q3, k3, value[..., :end, :], attn_mask=mask, scale=scaling, enable_gqa=True
        )
    return out.transpose(1, 2)


def dca_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention function for attn_implementation="dca" (inference only: no dropout, no padding)."""
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    return per_sequence(lambda q, k, v: dca_core(module, q, k, v, scaling), query, key, value, kwargs), None
