"""Held-out preference accuracy of a policy, the measure DPO optimises: how often the policy's implicit reward
beta * (log pi(y|x) - log pi_ref(y|x)) ranks the chosen answer above the rejected one (ties count half, so a policy
equal to its reference scores 0.5), and how often the policy's own log-likelihood does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


@torch.no_grad()
def completion_logprobs(
    model, tok, prompts: Sequence[Sequence[dict]], completions: Sequence[str], *, batch_size: int = 64
) -> list[float]:
    """Sum of log p(completion tokens, `<|im_end|>` included | prompt) under the chat template, per row."""
    was_training = model.training
    model.eval()
    rows = []
    for p, c in zip(prompts, completions):
        prefix = tok.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(list(p) + [{"role": "assistant", "content": c}], tokenize=False)
        ids_p = tok(prefix, add_special_tokens=False)["input_ids"]
        ids_f = tok(full, add_special_tokens=False)["input_ids"]
        if ids_f[: len(ids_p)] != ids_p:
            raise ValueError(
                "the chat template renders the prompt differently with and without the answer; "
                "completion log-probabilities need a prefix-stable template"
            )
        rows.append((ids_f, len(ids_p)))
    out: list[float] = []
    try:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, (r, _) in enumerate(chunk):
                ids[j, : len(r)] = torch.tensor(r)
                mask[j, : len(r)] = 1
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(model.device))[..., 0]
            for j, (r, start) in enumerate(chunk):
                # tokens start .. len(r)-1 are the answer's; the template's trailing newline after <|im_end|> is not
                end = len(r) - 1 if tok.decode(r[-1:]) == "\n" else len(r)
                out.append(float(logp[j, start - 1 : end - 1].sum()))
    finally:
        model.train(was_training)
    return out


def preference_accuracy(
    policy_c: list[float],
    policy_r: list[float],
    ref_c: list[float] | None = None,
    ref_r: list[float] | None = None,
    beta: float = 1.0,
) -> dict[str, float]:
    """Share of pairs ranked right (ties half) by the implicit reward (needs the reference's log-probs) and by the
    policy's own log-likelihood, with their standard errors."""

    def acc(diffs: list[float]) -> tuple[float, float]:
        wins = [1.0 if d > 1e-6 else 0.5 if abs(d) <= 1e-6 else 0.0 for d in diffs]
        m = sum(wins) / max(1, len(wins))
        var = sum((w - m) ** 2 for w in wins) / max(1, len(wins) - 1)
        return m, math.sqrt(var / max(1, len(wins)))

    out = {}
    out["loglik_accuracy"], out["loglik_accuracy_stderr"] = acc([c - r for c, r in zip(policy_c, policy_r)])
    if ref_c is not None and ref_r is not None:
        margins = [(pc - rc) - (pr - rr) for pc, pr, rc, rr in zip(policy_c, policy_r, ref_c, ref_r)]
        out["implicit_reward_accuracy"], out["implicit_reward_accuracy_stderr"] = acc(margins)
        out["implicit_reward_margin"] = beta * sum(margins) / max(1, len(margins))
    out["pairs"] = float(len(policy_c))
    return out
