"""Reward-model preference pairs, each labelled with the criterion that decides it.

The Qwen2.5 report's reward model judges answers on criteria that include truthfulness, helpfulness, conciseness,
relevance and harmlessness. The four here are the ones a tiny model can learn and a program can label, so that
every pair's preference is certain and accuracy can be reported per criterion:

- `correct`:  the reference answer vs a wrong one (the task's verifier says which is right); for numbers, off by
              more than 10 (`synthetic.distant_wrong_answer`): measured on the 2-layer test model, near misses
              (off by 1, 2 or 10) were ranked right only 56% of the time, since they need the exact arithmetic;
- `concise`:  the bare answer vs the same answer padded with filler (both correct);
- `on_topic`: the answer vs a fluent reply to some other conversation (a real chat-corpus line);
- `format`:   the answer vs the same answer in broken ChatML (a leaked control token, turn or role header).
"""

from __future__ import annotations

import random
import zlib

CRITERIA = ("correct", "concise", "on_topic", "format")

_FILLER = (
    "Sure, I can help with that.",
    "Great question!",
    "Let me think about this carefully.",
    "This is a classic kind of problem.",
    "I will work through it step by step.",
    "Happy to help with this one.",
    "Let me take a moment to consider it.",
    "Here is what I found after checking.",
    "Good one, let me see.",
    "I double-checked this to be sure.",
    "Numbers like these are fun to work with.",
    "Okay, here goes.",
)
_CLOSING = (
    "I hope this helps!",
    "Let me know if you have any other questions.",
    "Feel free to ask for more.",
    "Have a great day!",
    "Thanks for asking.",
    "Glad I could help.",
)


def padded(reply: str, rng: random.Random) -> str:
    """The same answer wrapped in filler: still correct for the verifier (it reads what follows 'answer is'), longer.

    Fenced code keeps its block intact between the sentences."""
    pre = " ".join(rng.sample(_FILLER, rng.randint(1, 3)))
    if reply.lstrip().startswith("```"):
        return f"{pre}\n{reply}\n{rng.choice(_CLOSING)}"
    return f"{pre} The answer is {reply}."


def broken(reply: str, rng: random.Random) -> str:
    """The answer in broken ChatML/answer format: what `verifiers.format.clean_format` rejects."""
    kind = rng.randrange(5)
    if kind == 0:
        return f"<|im_start|>assistant\n{reply}"  # a second turn header leaked into the answer
    if kind == 1:
        return f"{reply}<|im_end|>\n<|im_start|>user\n"  # runs on into a made-up user turn
    if kind == 2:
        return f"assistant\n{reply}"  # the role header written out as text
    if kind == 3:
        return f"{reply}<|endoftext|>"  # a document separator inside the turn
    return f"<|im_end|>\n{reply}"  # the turn closed before the answer


def is_test_reply(text: str) -> bool:
    """Off-topic replies are split by a stable hash: a held-out pair never reuses a training pair's reply."""
    return zlib.crc32(text.encode("utf-8")) % 4 == 0


def off_topic_replies(conversations: list[list[dict]]) -> tuple[list[str], list[str]]:
    """(train, test) assistant lines of real chat dialogues, deduplicated, split by `is_test_reply`."""
    lines = sorted(
        {
            m["content"].strip()
            for c in conversations
            for m in c
            if m["role"] == "assistant" and len(m["content"].strip()) >= 12
        }
    )
    return [t for t in lines if not is_test_reply(t)], [t for t in lines if is_test_reply(t)]


def preference_pair(
    prompt: list[dict], reply: str, wrong: str, criterion: str, rng: random.Random, replies: list[str], task: str
) -> dict:
    """One {prompt, chosen, rejected, task, criterion} row: chosen is always the correct, concise, well-formed reply."""
    if criterion == "correct":
        bad = wrong
    elif criterion == "concise":
        bad = padded(reply, rng)
    elif criterion == "on_topic":
        if not replies:
            raise ValueError("on_topic pairs need chat replies (chatterbot-corpus) and none were found")
        bad = rng.choice(replies)
    elif criterion == "format":
        bad = broken(reply, rng)
    else:
        raise ValueError(f"unknown preference criterion {criterion!r}; one of {CRITERIA}")
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": reply}],
        "rejected": [{"role": "assistant", "content": bad}],
        "task": task,
        "criterion": criterion,
    }
