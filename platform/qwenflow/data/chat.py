"""Real chat conversations (chatterbot-corpus, English) and the role-order rule every conversation must obey."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROLES = ("system", "user", "assistant")


def role_problem(messages) -> str | None:
    """Why a conversation is malformed, or None: an optional system message, then user/assistant alternating,
    starting with user and ending with assistant, each content a non-empty string."""
    if messages is None or len(messages) == 0:
        return "no messages"
    msgs = list(messages)
    if not all(isinstance(m, dict) and "role" in m and "content" in m for m in msgs):
        return "a message is not a {role, content} object"
    if msgs[0]["role"] == "system":
        msgs = msgs[1:]
    if not msgs:
        return "only a system message"
    for i, m in enumerate(msgs):
        if m["role"] not in ROLES:
            return f"unknown role {m['role']!r}"
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            return f"message {i} has role {m['role']!r}, expected {want!r} (roles must alternate, user first)"
        if not isinstance(m["content"], str) or not m["content"].strip():
            return f"message {i} has empty content"
    if msgs[-1]["role"] != "assistant":
        return "the last message is not from the assistant"
    return None


def chatterbot_conversations(stats: Counter | None = None) -> list[list[dict]]:
    """English chatterbot-corpus dialogues as user/assistant turns; odd trailing turns are cut, broken ones counted."""
    import importlib.metadata

    import yaml

    stats = stats if stats is not None else Counter()
    try:
        root = Path(importlib.metadata.distribution("chatterbot-corpus").locate_file("chatterbot_corpus/data/english"))
    except importlib.metadata.PackageNotFoundError:
        raise ValueError("chat data needs chatterbot-corpus: pip install --no-deps chatterbot-corpus==1.3.3") from None
    out = []
    for f in sorted(root.glob("*.yml")):
        doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for conv in doc.get("conversations") or []:
            turns = [str(t).strip() for t in conv if t is not None and str(t).strip()]
            if len(turns) % 2:
                turns = turns[:-1]  # a dialogue ending on the user's line has no answer to learn from
            msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
            problem = role_problem(msgs)
            if problem:
                stats[f"chat: {problem.split(' (')[0]}"] += 1
                continue
            out.append(msgs)
    return out
