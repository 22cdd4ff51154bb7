"""Passkey retrieval and in-length perplexity under each long-context setting, and their heat maps (the prompts:
qwenflow.data.passkey)."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import torch

from qwenflow.data.passkey import Passkeys


@torch.inference_mode()
def passkey_accuracy(model, keys: Passkeys, length: int, depth: float, samples: int, seed: int = 0) -> float:
    rng = random.Random(f"{seed}:{length}:{depth}")
    cases = [keys.case(length, depth, rng) for _ in range(samples)]
    ids = torch.tensor([c[0] for c in cases], device=model.device)
    new = max(len(keys.answer_ids(v)) for _, v in cases) + 1
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new,
        do_sample=False,
        pad_token_id=keys.tok.pad_token_id,
        eos_token_id=None,
    )
    texts = keys.tok.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
    return sum(t.strip().startswith(v) for t, (_, v) in zip(texts, cases)) / samples


@torch.inference_mode()
def perplexity(model, ids: list[int], length: int, windows: int = 8) -> float:
    """Mean next-token perplexity over `windows` non-overlapping windows of `length` tokens of held-out text."""
    nll, n = 0.0, 0
    for w in range(windows):
        chunk = ids[w * length : (w + 1) * length + 1]
        if len(chunk) < length + 1:
            break
        x = torch.tensor([chunk], device=model.device)
        logits = model(x[:, :-1]).logits.float()
        nll += torch.nn.functional.cross_entropy(logits[0], x[0, 1:], reduction="sum").item()
        n += length
    if not n:
        raise ValueError(f"held-out text too short for one window of {length} tokens")
    return math.exp(nll / n)


def run_grid(
    load,
    settings,
    keys: Passkeys,
    trained: int,
    multiples=(1, 2, 4, 8),
    depths=(0.0, 0.25, 0.5, 0.75, 1.0),
    samples: int = 10,
    heldout: list[int] | None = None,
    ppl_multiples=(1, 4),
    ppl_windows: int = 8,
    log=print,
    on_setting=None,
) -> dict:
    """Accuracy[setting][depth][length] and perplexities; `load(setting)` returns a ready model.
    `on_setting(report)` runs after each setting (to save partial results of a long run)."""
    lengths = [int(m * trained) for m in multiples]
    report: dict[str, Any] = {
        "trained_length": trained,
        "lengths": lengths,
        "depths": list(depths),
        "samples": samples,
        "accuracy": {},
        "perplexity": {},
        "seconds": {},
    }
    for setting in settings:
        t0 = time.time()
        model = load(setting)
        if heldout:
            report["perplexity"][setting] = {
                str(int(m * trained)): perplexity(model, heldout, int(m * trained), ppl_windows) for m in ppl_multiples
            }
            log(f"  {setting} perplexity {report['perplexity'][setting]} ({time.time() - t0:.0f} s)")
        grid = [[0.0] * len(lengths) for _ in depths]
        for j, L in enumerate(lengths):
            for i, d in enumerate(depths):
                grid[i][j] = passkey_accuracy(model, keys, L, d, samples)
            log(f"  {setting} {L} tokens: {[row[j] for row in grid]} by depth ({time.time() - t0:.0f} s)")
        report["accuracy"][setting] = grid
        report["seconds"][setting] = round(time.time() - t0, 1)
        means = [sum(grid[i][j] for i in range(len(depths))) / len(depths) for j in range(len(lengths))]
        log(
            f"{setting:16s} "
            + " ".join(f"{L}:{a:.2f}" for L, a in zip(lengths, means))
            + f"  ppl {report['perplexity'].get(setting)}  ({report['seconds'][setting]} s)"
        )
        del model
        if on_setting:
            on_setting(report)
    return report


def mean_over_depths(grid: list[list[float | None]], j: int) -> float | None:
    """Mean accuracy of length column j; None when a cell was not measured (a stopped or partial run)."""
    col = [row[j] for row in grid]
    measured = [a for a in col if a is not None]
    return None if len(measured) < len(col) else sum(measured) / len(measured)


def table(report: dict) -> str:
    """Markdown table: passkey accuracy (mean over depths; n = samples x depths per length) and perplexity."""
    lengths, trained = report["lengths"], report["trained_length"]
    ppl_lengths = list(dict.fromkeys(k for p in report["perplexity"].values() for k in p))
    head = (
        "| setting | "
        + " | ".join(f"{L // trained}x ({L})" for L in lengths)
        + " | "
        + "".join(f"ppl @ {k} | " for k in ppl_lengths)
    )
    rows = [head.rstrip(), "|" + "---|" * (len(lengths) + len(ppl_lengths) + 1)]
    for setting, grid in report["accuracy"].items():
        means = [mean_over_depths(grid, j) for j in range(len(lengths))]
        ppl = report["perplexity"].get(setting, {})
        rows.append(
            f"| {setting} | "
            + " | ".join("-" if m is None else f"{m:.0%}" for m in means)
            + " | "
            + "".join(f"{ppl[k]:.2f} | " if k in ppl else "- | " for k in ppl_lengths).rstrip()
        )
    return "\n".join(rows)


def heatmaps(report: dict, path: str | Path) -> Path:
    """One panel per setting: accuracy by context length (x) and needle depth (y)."""
    # lazy: imports matplotlib (240 ms)
    import matplotlib

    matplotlib.use("Agg")
    # lazy: imports matplotlib (seconds to import)
    import matplotlib.pyplot as plt

    settings = list(report["accuracy"])
    cols = min(len(settings), 3)
    rows = -(-len(settings) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False, constrained_layout=True)
    for ax in axes.flat[len(settings) :]:
        ax.axis("off")
    for ax, setting in zip(axes.flat, settings):
        grid = [[float("nan") if a is None else a for a in row] for row in report["accuracy"][setting]]
        cmap = plt.get_cmap("RdYlGn").with_extremes(bad="lightgrey")  # grey: not measured
        im = ax.imshow(grid, vmin=0, vmax=1, cmap=cmap, aspect="auto")
        ax.set_xticks(range(len(report["lengths"])), [str(L) for L in report["lengths"]], fontsize=7)
        ax.set_yticks(range(len(report["depths"])), [f"{d:.0%}" for d in report["depths"]], fontsize=7)
        ax.set_title(setting, fontsize=9)
        ax.set_xlabel("context tokens", fontsize=8)
        ax.set_ylabel("passkey depth", fontsize=8)
        for i, row in enumerate(report["accuracy"][setting]):
            for j, a in enumerate(row):
                ax.text(j, i, "n/a" if a is None else f"{a:.0%}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=axes, shrink=0.6, label="accuracy")
    fig.suptitle(
        f"passkey retrieval, trained length {report['trained_length']}, n = {report['samples']} per cell", fontsize=9
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
