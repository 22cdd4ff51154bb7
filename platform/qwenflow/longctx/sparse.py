"""Block-sparse prefill attention (in the spirit of MInference): attention sinks + a local window + the top-k
key blocks chosen per query block and head by mean-pooled q.k scores. Exact dense attention below a threshold
and for decoding steps, where it costs little.

With DCA switched on as well, keys sit at DCA's remapped positions and each selected block is scored with the
DCA query (intra / successive / inter) its chunk distance calls for, so no distance exceeds the trained length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .dca import dca_core, dca_params, per_sequence, query_positions
from .rope import inv_freq_for, rerotate


@dataclass(frozen=True)
class SparseConfig:
    """Sparsity of prefill attention; stored in the model config as `sparse_attention_config`."""

    block_size: int = 64  # tokens per query/key block
    sink_blocks: int = 1  # first blocks every query block sees (attention sinks)
    local_blocks: int = 4  # most recent blocks, the diagonal one included (local window)
    top_k: int = 8  # further blocks chosen by pooled scores
    threshold: int = 8192  # prompts shorter than this use exact dense attention

    def __post_init__(self):
        for name in ("block_size", "local_blocks", "threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"SparseConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.sink_blocks < 0 or self.top_k < 0:
            raise ValueError("SparseConfig.sink_blocks and top_k must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


def sparse_config(config) -> SparseConfig:
    raw = getattr(config, "sparse_attention_config", None)
    return SparseConfig(**raw) if raw else SparseConfig()


def dense_attention(module, query, key, value, scaling):
    """Exact causal attention for queries at the end of the keys (prefill or decoding)."""
    if getattr(module.config, "dual_chunk_attention_config", None):
        return dca_core(module, query, key, value, scaling)
    q_len, k_len = query.shape[2], key.shape[2]
    group = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(group, 1), value.repeat_interleave(group, 1)
    mask = None
    if q_len != k_len and q_len > 1:
        mask = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(k_len - q_len)
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, is_causal=q_len == k_len and q_len > 1, scale=scaling
    )
    return out.transpose(1, 2)


def block_sparse_prefill(module, query, key, value, scaling, cfg: SparseConfig, max_score_bytes: int = 1 << 28):
    """Prefill (Q == K) over selected key blocks. query (B, H, L, D), key/value (B, Hkv, L, D) -> (B, L, H, D)."""
    bsz, h, length, d = query.shape
    h_kv = key.shape[1]
    group, blk = h // h_kv, cfg.block_size
    n_blk = -(-length // blk)
    pad = n_blk * blk - length
    device = query.device
    pos = torch.arange(n_blk * blk, device=device)
    use_dca = bool(getattr(module.config, "dual_chunk_attention_config", None))
    if use_dca:
        c, s = dca_params(module.config)
        if s % blk:
            raise ValueError(
                f"sparse + DCA: block_size ({blk}) must divide the DCA chunk length chunk_size - local_size ({s})"
            )
        inv_freq = inv_freq_for(module)
        real = pos[:length]
        key = rerotate(key, real % s - real, inv_freq)
        remap = query_positions(real, c, s)
        q_versions = [rerotate(query, remap[name] - real, inv_freq) for name in ("intra", "succ", "inter")]
        blk_chunk = torch.arange(n_blk, device=device) * blk // s
        chunk_gap = blk_chunk[:, None] - blk_chunk[None, :]
        relation = chunk_gap.clamp(0, 2)  # 0 intra, 1 successive, 2 inter: which query version scores the block
    else:
        q_versions = [query]
        relation = torch.zeros(n_blk, n_blk, dtype=torch.long, device=device)

    def blocks(x):  # (B, H?, L, D) -> (B, H?, n_blk, blk, D)
        return F.pad(x, (0, 0, 0, pad)).view(*x.shape[:2], n_blk, blk, d)

    kb, vb = blocks(key), blocks(value)
    qbs = [blocks(q) for q in q_versions]

    # Block scores from pooled queries/keys, per head (queries of a kv-head group share its keys).
    pooled_k = kb.float().mean(3).repeat_interleave(group, 1)  # (B, H, n, D)
    est = torch.stack([qb.float().mean(3) @ pooled_k.transpose(-1, -2) for qb in qbs])  # (V, B, H, n, n)
    est = est.gather(0, relation.expand(1, bsz, h, n_blk, n_blk)).squeeze(0)
    qi = torch.arange(n_blk, device=device)[:, None]
    ki = torch.arange(n_blk, device=device)[None, :]
    forced = (ki < cfg.sink_blocks) | ((qi - ki) < cfg.local_blocks)
    est = est.masked_fill(forced, float("inf")).masked_fill(ki > qi, float("-inf"))
    n_sel = min(n_blk, cfg.sink_blocks + cfg.local_blocks + cfg.top_k)
    top = est.topk(n_sel, dim=-1)  # (B, H, n, M)
    sel, valid = top.indices, top.values > float("-inf")

    # Gather the chosen key/value blocks per head and attend, a group of query blocks at a time.
    head_kv = torch.arange(h, device=device) // group
    out = torch.empty(bsz, h, n_blk, blk, d, dtype=torch.float32, device=device)
    per_qblock = len(qbs) * blk * n_sel * blk * 4 * h * bsz
    step = max(1, max_score_bytes // max(per_qblock, 1))
    for lo in range(0, n_blk, step):
        hi = min(lo + step, n_blk)
        idx = sel[:, :, lo:hi]  # (B, H, g, M)
        bi = torch.arange(bsz, device=device)[:, None, None, None]
        k_sel = kb[bi, head_kv[None, :, None, None], idx].flatten(3, 4)  # (B, H, g, M*blk, D)
        v_sel = vb[bi, head_kv[None, :, None, None], idx].flatten(3, 4)
        rel = relation[torch.arange(lo, hi, device=device)[None, None, :, None], idx]
        scores = None
        for version, qb in enumerate(qbs):
            sc = torch.matmul(qb[:, :, lo:hi], k_sel.transpose(-1, -2)).float() * scaling
            use = (rel == version).repeat_interleave(blk, -1).unsqueeze(-2)  # (B, H, g, 1, M*blk)
            scores = sc if scores is None else torch.where(use, sc, scores)
        assert scores is not None  # qbs is never empty
        q_tok = pos.view(n_blk, blk)[lo:hi]  # (g, blk)
        k_tok = (idx.unsqueeze(-1) * blk + torch.arange(blk, device=device)).flatten(3)  # (B, H, g, M*blk)
        keep = (k_tok.unsqueeze(-2) <= q_tok[None, None, :, :, None]) & (k_tok.unsqueeze(-2) < length)
        keep = keep & valid[:, :, lo:hi].repeat_interleave(blk, -1).unsqueeze(-2)
        probs = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1).nan_to_num(0.0)
        out[:, :, lo:hi] = torch.matmul(probs.to(v_sel.dtype), v_sel).float()
    return out.view(bsz, h, n_blk * blk, d)[:, :, :length].transpose(1, 2).to(query.dtype)


def sparse_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention function for attn_implementation="sparse" (inference only, no padding)."""
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    cfg = sparse_config(module.config)

    def core(q, k, v):
        if q.shape[2] != k.shape[2] or k.shape[2] < cfg.threshold:
            return dense_attention(module, q, k, v, scaling)
        return block_sparse_prefill(module, q, k, v, scaling, cfg)

    return per_sequence(core, query, key, value, kwargs), None
