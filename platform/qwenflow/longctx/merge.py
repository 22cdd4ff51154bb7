"""Attention over one block of keys returning its log-sum-exp, and the exact merge of such partial results.

Hand-written because DCA scores each key block with a differently-rotated query: no fused kernel in torch
returns the log-sum-exp on every backend. softmax over the union of key blocks = LSE-weighted mix of the parts.
"""
from __future__ import annotations

import torch


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scaling: float,
           mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """q (..., Q, D), k/v (..., K, D) broadcastable; mask (Q, K) True = keep. Returns (out float32, lse float32)."""
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * scaling
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    probs = torch.exp(scores - lse.unsqueeze(-1)).nan_to_num(0.0)  # a row with every key masked contributes 0
    return torch.matmul(probs.to(v.dtype), v).float(), lse


def merge(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Combine partial attention outputs over disjoint key sets by their log-sum-exp weights."""
    outs = torch.stack([o for o, _ in parts])
    lses = torch.stack([l for _, l in parts])
    weights = torch.softmax(lses, dim=0).nan_to_num(0.0)
    return (outs * weights.unsqueeze(-1)).sum(dim=0)
