"""Seeded code tasks with hidden unit tests: "write a Python function that ..." problems for SFT, GRPO and eval.

reasoning-gym (installed) has no function-writing tasks with tests (its `codeio` asks to predict a program's
output), so the problems are generated here from a dozen parametrised families. Each problem carries
- `question`: the statement the model sees (signature, behaviour, one visible example, "reply in a code block"),
- `answer`: hidden unit tests as Python asserts (the key `qwenflow.verifiers.code.CodeReward` runs in the sandbox),
- `solution`: a correct reference solution (the SFT target and the chosen side of preference pairs),
- `wrong`: a plausible buggy solution (off by one, wrong case handling, ...) that fails the tests (rejected side).
Test inputs are drawn from a random.Random seeded by the problem's own key, so a problem is the same on every run
and machine; expected values come from running the reference solution here (our own code, not model output).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

CODE_TASK = "python_functions"
N_TESTS = 6
_REPLY = "Reply with the function in a ```python code block."
_WORDS = ("Fizz", "Buzz", "Bang", "Pop", "Zap", "Ding")
_TEXT = (
    "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches "
    "in an old barn full of hay and apples"
).split()


def _text(r: random.Random) -> str:
    words = [r.choice(_TEXT) for _ in range(r.randint(0, 9))]
    return " ".join(w.upper() if r.random() < 0.2 else w.capitalize() if r.random() < 0.2 else w for w in words)


@dataclass(frozen=True)
class Family:
    name: str  # the function's name
    grid: Callable[[], list[dict]]  # every parameter combination: one problem each
    statement: str  # what the function returns, formatted with the parameters
    signature: str  # "(xs: list[int]) -> int"
    solution: str  # function body, formatted with the parameters
    wrong: str  # a plausible buggy body
    inputs: Callable[[random.Random, dict], tuple]  # one argument tuple


FAMILIES = (
    Family(
        "sum_divisible",
        lambda: [dict(k=k, t=t) for k in range(2, 10) for t in range(-5, 6)],
        "the sum of the elements of `xs` that are divisible by {k} and greater than {t}",
        "(xs: list[int]) -> int",
        "    return sum(x for x in xs if x % {k} == 0 and x > {t})",
        "    return sum(x for x in xs if x % {k} == 0)",
        # always one non-zero multiple of k at or below t: the threshold matters in every test
        lambda r, p: ([r.randint(p["t"] - 6, p["t"] + 30) for _ in range(r.randint(0, 8))] + [_multiple_at_most(p)],),
    ),
    Family(
        "count_letter",
        lambda: [dict(c=c, extra=e) for c in "abcdefghijklmnopqrstuvwxyz" for e in (0, 1)],
        "how many times the letter '{c}' occurs in the string `s`, counting upper and lower case{extra_text}",
        "(s: str) -> int",
        "    return s.lower().count('{c}'){extra_code}",
        "    return s.count('{c}'){extra_code}",
        lambda r, p: (
            "".join(r.choice(p["c"] + p["c"].upper() + "xyz ") for _ in range(r.randint(1, 12))) + p["c"].upper(),
        ),
    ),
    Family(
        "clip_values",
        lambda: [dict(lo=lo, hi=hi) for lo in range(-10, 1) for hi in range(1, 21, 2)],
        "a new list in which every element of `xs` below {lo} is replaced by {lo} and every element above {hi} "
        "is replaced by {hi}",
        "(xs: list[int]) -> list[int]",
        "    return [min(max(x, {lo}), {hi}) for x in xs]",
        "    return [min(x, {hi}) for x in xs]",
        lambda r, p: ([r.randint(p["lo"] - 10, p["hi"] + 10) for _ in range(r.randint(1, 9))] + [p["lo"] - 1],),
    ),
    Family(
        "power_sum",
        lambda: [dict(p=p, a=a) for p in range(1, 5) for a in range(0, 10)],
        "the sum of i**{p} for every integer i from {a} to `n` inclusive (0 when `n` < {a})",
        "(n: int) -> int",
        "    return sum(i ** {p} for i in range({a}, n + 1))",
        "    return sum(i ** {p} for i in range({a}, n))",
        lambda r, p: (r.randint(p["a"], p["a"] + 25),),
    ),
    Family(
        "rotate_left",
        lambda: [dict(k=k, d=d) for k in range(1, 13) for d in ("left", "right")],
        "`xs` rotated to the {d} by {k} positions (wrapping around; rotating by the length gives the same list; "
        "an empty list stays empty)",
        "(xs: list[int]) -> list[int]",
        "    if not xs:\n        return []\n    k = {k} % len(xs)\n    return {rot}",
        "    if not xs:\n        return []\n    k = {k} % len(xs)\n    return {wrong_rot}",
        lambda r, p: (list(range(r.randint(2, 9))) if r.random() < 0.8 else [],),
    ),
    Family(
        "every_kth_char",
        lambda: [dict(k=k, start=s) for k in range(2, 8) for s in range(0, 4)],
        "the string made of every {k}th character of `s`, starting with the character at index {start}",
        "(s: str) -> str",
        "    return s[{start}::{k}]",
        "    return s[{start} + 1::{k}]",
        lambda r, p: ("".join(r.choice("abcdefghij") for _ in range(r.randint(p["start"] + 2, 30))),),
    ),
    Family(
        "count_long_words",
        lambda: [dict(n=n, cmp=c) for n in range(2, 10) for c in ("more than", "fewer than", "exactly")],
        "how many words of `text` (split on whitespace) have {cmp} {n} characters",
        "(text: str) -> int",
        "    return sum(1 for w in text.split() if len(w) {op} {n})",
        "    return sum(1 for w in text.split() if len(w) {wrong_op} {n})",
        lambda r, p: (" ".join([_text(r), "x" * p["n"], "y" * (p["n"] + 1)]),),
    ),
    Family(
        "running_total",
        lambda: [dict(op=op, skip=s) for op in ("max", "min", "sum") for s in range(0, 12)],
        "the list whose i-th element is the {op_word} of `xs[{skip}:i + 1]` (so the result has "
        "max(0, len(xs) - {skip}) elements)",
        "(xs: list[int]) -> list[int]",
        "    return [{op}(xs[{skip}:i + 1]) for i in range({skip}, len(xs))]",
        "    return [{op}(xs[{skip}:i + 1]) for i in range({skip} + 1, len(xs))]",
        lambda r, p: ([r.randint(-20, 20) for _ in range(r.randint(p["skip"] + 2, p["skip"] + 9))],),
    ),
    Family(
        "shift_letters",
        lambda: [dict(k=k) for k in range(1, 26)],
        "`s` with every lowercase letter moved {k} places forward in the alphabet, wrapping from 'z' back to "
        "'a'; every other character stays as it is",
        "(s: str) -> str",
        "    return ''.join(chr((ord(c) - 97 + {k}) % 26 + 97) if 'a' <= c <= 'z' else c for c in s)",
        "    return ''.join(chr(ord(c) + {k}) if 'a' <= c <= 'z' else c for c in s)",
        lambda r, p: ("".join(r.choice("abcxyz XYZ!") for _ in range(r.randint(1, 12))) + "z",),
    ),
    Family(
        "digit_sum",
        lambda: [dict(b=b, m=m) for b in range(2, 11) for m in range(1, 6)],
        "{m} times the sum of the digits of the non-negative integer `n` written in base {b}",
        "(n: int) -> int",
        "    total = 0\n    while n:\n        total += n % {b}\n        n //= {b}\n    return {m} * total",
        "    total = 0\n    while n > {b}:\n        total += n % {b}\n        n //= {b}\n    return {m} * total",
        lambda r, p: (r.choice([0, p["b"], r.randint(1, 10_000)]),),
    ),
    Family(
        "fizz_words",
        lambda: [
            dict(a=a, b=b, wa=wa, wb=wb)
            for a in range(2, 8)
            for b in range(a + 1, 10)
            if b % a
            for wa in _WORDS[:3]
            for wb in _WORDS[3:]
        ],
        "a list of the numbers 1 to `n` as strings, except that multiples of both {a} and {b} become "
        "'{wa}{wb}', other multiples of {a} become '{wa}' and other multiples of {b} become '{wb}'",
        "(n: int) -> list[str]",
        "    out = []\n    for i in range(1, n + 1):\n        if i % {a} == 0 and i % {b} == 0:\n"
        "            out.append('{wa}{wb}')\n        elif i % {a} == 0:\n            out.append('{wa}')\n"
        "        elif i % {b} == 0:\n            out.append('{wb}')\n        else:\n            out.append(str(i))\n"
        "    return out",
        "    out = []\n    for i in range(1, n + 1):\n        if i % {a} == 0:\n            out.append('{wa}')\n"
        "        elif i % {b} == 0:\n            out.append('{wb}')\n        else:\n            out.append(str(i))\n"
        "    return out",
        lambda r, p: (r.randint(p["a"] * p["b"], p["a"] * p["b"] * 3),),
    ),
    Family(
        "keep_frequent",
        lambda: [dict(k=k, order=o) for k in range(1, 7) for o in ("first", "sorted", "reversed")],
        "the distinct elements of `xs` that occur exactly {k} times, {order_text}",
        "(xs: list[int]) -> list[int]",
        "    seen = []\n    for x in xs:\n        if xs.count(x) == {k} and x not in seen:\n"
        "            seen.append(x)\n    return {ret}",
        "    seen = []\n    for x in xs:\n        if xs.count(x) >= {k} and x not in seen:\n"
        "            seen.append(x)\n    return {ret}",
        lambda r, p: ([r.randint(0, 5) for _ in range(r.randint(3, 14))] + [9] * (p["k"] + 1),),
    ),
)


def _multiple_at_most(p: dict) -> int:
    m = p["t"] - p["t"] % p["k"]
    return m if m else -p["k"]


def _params(f: Family, p: dict) -> dict:
    """Derived template fields (wording and code that depend on a parameter)."""
    q = dict(p)
    if f.name == "count_letter":
        q["extra_text"] = ", plus the number of digits in `s`" if p["extra"] else ""
        q["extra_code"] = " + sum(ch.isdigit() for ch in s)" if p["extra"] else ""
    elif f.name == "rotate_left":
        left, right = "xs[k:] + xs[:k]", "xs[len(xs) - k:] + xs[:len(xs) - k]"
        q["rot"], q["wrong_rot"] = (left, right) if p["d"] == "left" else (right, left)
    elif f.name == "count_long_words":
        q["op"], q["wrong_op"] = {"more than": (">", ">="), "fewer than": ("<", "<="), "exactly": ("==", ">=")}[
            p["cmp"]
        ]
    elif f.name == "running_total":
        q["op_word"] = {"max": "largest element", "min": "smallest element", "sum": "sum"}[p["op"]]
    elif f.name == "keep_frequent":
        q["order_text"], q["ret"] = {
            "first": ("in order of first appearance", "seen"),
            "sorted": ("in increasing order", "sorted(seen)"),
            "reversed": ("in decreasing order", "sorted(seen, reverse=True)"),
        }[p["order"]]
    return q


def _define(f: Family, body: str) -> str:
    return f"def {f.name}{f.signature}:\n{body}\n"


def _compile(source: str, name: str) -> Callable:
    """Our own reference solution as a callable (trusted code written above), to compute expected values."""
    scope: dict = {}
    exec(source, scope)  # noqa: S102 - our template, never model output
    return scope[name]


def _call(name: str, args: tuple) -> str:
    return f"{name}({', '.join(map(repr, args))})"


def make_problems(f: Family, p: dict, variants: int = 1) -> list[dict]:
    """One problem (family + parameters) in `variants` wordings: each shows another example input (the hidden
    tests stay the same), so training can see a problem several times without repeating a conversation."""
    q = _params(f, p)
    key = f"{f.name}:" + ",".join(f"{k}={v}" for k, v in sorted(p.items()))
    name = f.name
    solution = _define(f, f.solution.format(**q))
    wrong = _define(f, f.wrong.format(**q))
    ref = _compile(solution, name)
    r = random.Random(key)  # str seeds hash with sha512: the same inputs on every run and machine
    tests, seen = [], set()
    for _ in range(N_TESTS * 4):
        args = f.inputs(r, q)
        if repr(args) not in seen:
            seen.add(repr(args))
            tests.append(f"assert {_call(name, args)} == {ref(*args)!r}")
        if len(tests) == N_TESTS:
            break
    answer = "\n".join(tests) + "\n"
    statement = f"Write a Python function `{name}{f.signature}` that returns {f.statement.format(**q)}.\n"
    out, shown = [], set()
    for v in range(variants * 3):  # small input spaces repeat examples: skip repeats, give up after 3x tries
        example = f.inputs(random.Random(f"{key}#{v}"), q)
        if repr(example) in shown:
            continue
        shown.add(repr(example))
        question = f"{statement}For example, `{_call(name, example)}` returns `{ref(*example)!r}`.\n{_REPLY}"
        out.append(
            {
                "task": CODE_TASK,
                "key": key,
                "question": question,
                "answer": answer,
                "solution": solution,
                "wrong": wrong,
            }
        )
        if len(out) == variants:
            break
    return out


def problem_grid() -> list[tuple[Family, dict]]:
    """Every distinct problem as (family, parameters), in a fixed order."""
    return [(f, p) for f in FAMILIES for p in f.grid()]


def code_universe() -> list[dict]:
    """Every distinct problem in its first wording."""
    return [make_problems(f, p)[0] for f, p in problem_grid()]


def split_code_problems(
    n_eval: int, seed: int, n_train: int = 0, max_variants: int = 40
) -> tuple[list[dict], list[dict]]:
    """(eval, train), disjoint by problem, not just by wording: a held-out problem appears in no training wording.

    Eval takes families in turn, at most half of any family, so every family stays in training and eval covers
    them evenly. Training problems come in enough wordings to give n_train distinct prompts (up to max_variants)."""
    rng = random.Random(seed)
    by_family: dict[str, list[tuple[Family, dict]]] = {}
    for f, p in problem_grid():
        by_family.setdefault(f.name, []).append((f, p))
    for ps in by_family.values():
        rng.shuffle(ps)
    cap = {name: len(ps) // 2 for name, ps in by_family.items()}
    taken = dict.fromkeys(by_family, 0)
    held: list[tuple[Family, dict]] = []
    while len(held) < n_eval and any(taken[name] < cap[name] for name in by_family):
        for name, ps in by_family.items():
            if len(held) < n_eval and taken[name] < cap[name]:
                held.append(ps[taken[name]])
                taken[name] += 1
    rest = [fp for name, ps in by_family.items() for fp in ps[taken[name] :]]
    variants = min(max_variants, max(1, -(-n_train // len(rest))))
    train = [x for f, p in rest for x in make_problems(f, p, variants)]
    rng.shuffle(train)
    return [make_problems(f, p)[0] for f, p in held], train


def fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"
