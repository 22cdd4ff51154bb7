"""Post-training datasets from verifiable problems and real chat: SFT conversations, GRPO prompts with answers,
reward-model preference pairs labelled by criterion (preference_pairs.py) and held-out eval splits.

Held-out problems are drawn first and every training set excludes their exact prompts; the held-out preference
pairs are built on those held-out problems (one pair per criterion each), so no reward-model test prompt is ever
trained on by any stage. Texts that overlap an external benchmark by the decontamination rule are dropped and counted.
"""

from __future__ import annotations

import random
from collections import Counter

from .chat import chatterbot_conversations
from .code_tasks import CODE_TASK, fenced, split_code_problems
from .decontam import drop_contaminated
from .preference_pairs import CRITERIA, off_topic_replies, preference_pair
from .synthetic import ARITHMETIC, CHAT, arithmetic_universe, distant_wrong_answer, problems
from .tool_calls import tool_call_examples


def _user(q: str) -> list[dict]:
    return [{"role": "user", "content": q}]


def _reply(p: dict) -> str:
    """The assistant's correct reply: the reference solution for code tasks (whose answer is the hidden tests)."""
    return fenced(p["solution"]) if "solution" in p else p["answer"]


def _cycle(pool: list[dict], n: int, rng: random.Random) -> list[dict]:
    """n items from pool, without repeats until the pool is used up (then another shuffled pass)."""
    out: list[dict] = []
    while len(out) < n and pool:
        batch = pool[:]
        rng.shuffle(batch)
        out += batch[: n - len(out)]
    return out


def _task_pools(task: str, spec, need: int, rng: random.Random) -> tuple[list[dict], list[dict]]:
    """(eval problems, training pool) for one task, disjoint by prompt text."""
    if task == ARITHMETIC:
        universe = arithmetic_universe(spec.arithmetic_ops, spec.arithmetic_max_answer)
        rng.shuffle(universe)
        return universe[: spec.eval_examples], universe[spec.eval_examples :]
    if task == CODE_TASK:  # a fixed universe of problems, split by problem (never a problem in both)
        return split_code_problems(spec.eval_examples, spec.seed, n_train=need)
    # Generated with a seed of their own; duplicates collapse to one, then eval takes the first distinct ones.
    seen, uniq = set(), []
    for p in problems(task, spec.eval_examples + need, seed=spec.seed * 1000 + 17):
        if p["question"] not in seen:
            seen.add(p["question"])
            uniq.append(p)
    return uniq[: spec.eval_examples], uniq[spec.eval_examples :]


def build_posttrain(spec, decon=None) -> dict:
    rng = random.Random(spec.seed)
    drops: Counter = Counter()
    hits: Counter = Counter()
    tasks = [t for t in spec.tasks if t != CHAT]
    # Chat is a share of SFT (chat_fraction), or all of it when `chat` is the only task.
    n_chat = spec.sft_examples if not tasks else int(round(spec.sft_examples * spec.chat_fraction))
    per_task_sft = (spec.sft_examples - n_chat) // max(1, len(tasks))
    per_task_rl = spec.rl_prompts // max(1, len(tasks))
    per_task_pref = spec.preference_pairs // max(1, len(tasks))

    def clean(ps: list[dict]) -> list[dict]:
        if decon is None:
            return ps
        return drop_contaminated(ps, [decon.match(p["question"]) for p in ps], drops, hits)

    # Off-topic replies for the on_topic criterion: real chat lines, train and test halves disjoint.
    replies_train, replies_test = off_topic_replies(chatterbot_conversations(Counter())) if tasks else ([], [])
    sft, rl, prefs, prefs_test, evals = [], [], [], [], {}
    for task in tasks:
        eval_ps, pool = _task_pools(task, spec, per_task_sft + per_task_rl + per_task_pref, rng)
        held = {p["question"] for p in eval_ps}
        before = len(pool)
        pool = [p for p in pool if p["question"] not in held]
        drops["overlaps_heldout_eval"] += before - len(pool)
        pool = clean(pool)
        if not pool:
            raise ValueError(
                f"task {task!r}: no training problems left after holding out {len(eval_ps)} and decontamination"
            )
        evals[task] = [{"prompt": _user(p["question"]), "task": task, "answer": p["answer"]} for p in eval_ps]
        for p in _cycle(pool, per_task_sft, rng):
            sft.append(
                {
                    "messages": _user(p["question"]) + [{"role": "assistant", "content": _reply(p)}],
                    "task": task,
                    "answer": p["answer"],
                }
            )
        for p in _cycle(pool, per_task_rl, rng):
            rl.append({"prompt": _user(p["question"]), "task": task, "answer": p["answer"]})

        # pool and task bound per iteration (B023); pair is only called inside this iteration anyway
        def pair(p: dict, criterion: str, replies: list[str], pool: list[dict] = pool, task: str = task) -> dict:
            # code tasks carry their own plausible bug; other tasks a clearly wrong answer (off by more than 10:
            # near misses need the exact arithmetic, which a reward model of the tiny recipe's size cannot do)
            wrong = fenced(p["wrong"]) if "wrong" in p else distant_wrong_answer(p, rng, pool[:200])
            return preference_pair(_user(p["question"]), _reply(p), wrong, criterion, rng, replies, task)

        prefs += [
            pair(p, CRITERIA[i % len(CRITERIA)], replies_train) for i, p in enumerate(_cycle(pool, per_task_pref, rng))
        ]
        prefs_test += [pair(p, c, replies_test) for p in eval_ps for c in CRITERIA]

    chat_count = 0
    if n_chat > 0:
        convs = chatterbot_conversations(drops)
        if decon is not None:
            kept = []
            for c in convs:
                name = decon.match("\n".join(m["content"] for m in c))
                if name:
                    drops["contaminated"] += 1
                    hits[name] += 1
                else:
                    kept.append(c)
            convs = kept
        for item in _cycle([{"c": conv} for conv in convs], n_chat, rng):
            sft.append({"messages": item["c"], "task": CHAT, "answer": ""})
            chat_count += 1
    sft += tool_call_examples(spec.tool_examples, spec.seed)  # tools requests answered with <tool_call> blocks
    rng.shuffle(sft)
    rng.shuffle(rl)
    rng.shuffle(prefs)
    return {
        "sft": sft,
        "rl": rl,
        "preferences_train": prefs,
        "preferences_test": prefs_test,
        "eval": evals,
        "drops": dict(drops),
        "contamination": dict(hits),
        "counts": {
            "sft": len(sft),
            "sft_chat": chat_count,
            "rl": len(rl),
            "preferences": len(prefs),
            "preferences_test": len(prefs_test),
            "eval": {t: len(v) for t, v in evals.items()},
        },
    }
