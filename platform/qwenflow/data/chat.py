"""Real chat conversations (chatterbot-corpus, English) and the role-order rule every conversation must obey: the
one conversation validator (data contracts and the post-training readers both call `conversation_problem`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROLES = ("system", "user", "assistant", "tool")
# Which role may follow which, in Qwen2.5's chat format: the assistant answers a user or a tool turn, and tool results
# follow the assistant's call (the template renders them as <tool_response> blocks).
FOLLOWS = {"user": ("assistant",), "assistant": ("user", "tool"), "tool": ("tool", "assistant")}


def conversation_problem(messages, *, prompt: bool = False) -> str | None:
    """Why a conversation is malformed, or None: an optional system message, then the user first, each later role
    one that may follow the one before (FOLLOWS), each content a string (non-empty but for the system's). A whole
    conversation ends with the assistant; a prompt (prompt=True) ends where the assistant answers next."""
    if messages is None or isinstance(messages, (str, bytes)) or not hasattr(messages, "__len__") or not len(messages):
        return "no messages: expected a non-empty list of {role, content} messages"
    msgs = list(messages)
    for j, m in enumerate(msgs):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            return f"message {j}: expected a dict with 'role' and 'content', got {m!r:.80}"
        if m["role"] not in ROLES:
            return f"message {j}: unknown role {m['role']!r}; use one of {', '.join(ROLES)}"
        if not isinstance(m["content"], str) or (m["role"] != "system" and not m["content"].strip()):
            return f"message {j}: empty content"
    start = 1 if msgs[0]["role"] == "system" else 0
    if start == len(msgs):
        return "only a system message"
    if msgs[start]["role"] != "user":
        return f"message {start}: role {msgs[start]['role']!r}, expected 'user' (the user speaks first)"
    for j in range(start + 1, len(msgs)):
        before, role = msgs[j - 1]["role"], msgs[j]["role"]
        if role not in FOLLOWS[before]:
            return f"message {j}: role {role!r} after {before!r}, expected {' or '.join(FOLLOWS[before])}"
    last = msgs[-1]["role"]
    if prompt and last == "assistant":
        return "a prompt must end with a user or tool turn, not the assistant's"
    if not prompt and last != "assistant":
        return f"the last message must be the assistant's (role {last!r} found)"
    return None


def chatterbot_conversations(stats: Counter | None = None) -> list[list[dict]]:
    """English chatterbot-corpus dialogues as user/assistant turns; odd trailing turns are cut, broken ones counted."""
    # lazy: 73 ms to import, needed only here
    import importlib.metadata

    import yaml

    stats = stats if stats is not None else Counter()
    try:
        dist = importlib.metadata.distribution("chatterbot-corpus")
        root = Path(str(dist.locate_file("chatterbot_corpus/data/english")))
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
            problem = conversation_problem(msgs)
            if problem:
                stats[f"chat: {problem.split(' (')[0]}"] += 1
                continue
            out.append(msgs)
    return out
