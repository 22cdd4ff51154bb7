"""Reward-model scoring: the one place that turns conversations into reward-model scores. The reward stage's
held-out accuracy, DPO's and GRPO's reward-model reward and the evaluation's pairwise accuracy all call it, so
a score means the same thing everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from qwenflow.models import io
from qwenflow.tracking.model_source import resolve

from .common import load_chat_tokenizer


def render(tok, conversation: Sequence[dict]) -> str:
    """The text a reward model reads: the chat template, or `role: content` lines for a tokenizer without one."""
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(list(conversation), tokenize=False)
    return "\n".join(f"{m['role']}: {m['content']}" for m in conversation)


@torch.no_grad()
def score_conversations(
    model, tok, conversations: Sequence[Sequence[dict]], *, max_length: int | None = 1024, batch_size: int = 32
) -> list[float]:
    """The reward model's raw score (its one logit) of each full conversation (prompt + answer). max_length=None
    keeps whole conversations; a cut drops the answer's end, which is what is being scored."""
    was_training = model.training
    model.eval()
    side = tok.padding_side
    tok.padding_side = "right"  # sequence classifiers read the last non-pad token
    scores: list[float] = []
    try:
        for i in range(0, len(conversations), batch_size):
            texts = [render(tok, c) for c in conversations[i : i + batch_size]]
            enc = tok(
                texts,
                return_tensors="pt",
                padding=True,
                truncation=max_length is not None,
                max_length=max_length,
                add_special_tokens=False,
            ).to(model.device)
            scores.extend(model(**enc).logits[:, 0].float().tolist())
    finally:
        tok.padding_side = side
        model.train(was_training)
    return scores


class RewardScorer:
    """A reward-model directory (or registry URI) loaded for scoring: `scorer(conversations) -> scores`."""

    def __init__(self, model_dir: str | Path, *, batch_size: int = 32, max_length: int | None = 1024):
        path = resolve(model_dir)
        self.tok = load_chat_tokenizer(path, require_chat_template=False)
        self.model = io.load_reward_model(path).eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tok.pad_token_id
        self.batch_size, self.max_length = batch_size, max_length

    def __call__(self, conversations: Sequence[Sequence[dict]]) -> list[float]:
        return score_conversations(
            self.model, self.tok, conversations, max_length=self.max_length, batch_size=self.batch_size
        )
