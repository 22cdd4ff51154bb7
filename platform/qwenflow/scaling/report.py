"""Plots and an HTML page for a scaling-law fit: loss vs LR per size, optimal LR/B vs N and D, loss contours."""
from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .fit import ScalingFit  # noqa: E402

DEEPSEEK = {"lr_c": (0.3118, -0.1250), "batch_c": (0.2920, 0.3271)}  # DeepSeek LLM (2024): eta = a C^b, B = a C^b


def _loss_vs_lr(df: pd.DataFrame, path: Path) -> None:
    cells = sorted(df.groupby(["arch", "n", "d"]).groups)
    fig, axes = plt.subplots(1, max(1, df["d"].nunique()), figsize=(6 * max(1, df["d"].nunique()), 4), squeeze=False)
    for ax, d in zip(axes[0], sorted(df["d"].unique())):
        for arch, n, dd in cells:
            if dd != d:
                continue
            sub = df[(df["arch"] == arch) & (df["n"] == n) & (df["d"] == d)]
            best_b = sub.loc[sub["loss"].idxmin(), "batch"]
            s = sub[sub["batch"] == best_b].sort_values("lr")
            ax.plot(s["lr"], s["loss"], "o-", label=f"{arch} N={n / 1e6:.2f}M (B={best_b:.0f} tok)")
        ax.set_xscale("log")
        ax.set(xlabel="learning rate", ylabel="validation loss", title=f"D = {d / 1e6:.2f}M tokens")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _optimum_vs(fit: ScalingFit, key: str, law, path: Path, ylabel: str) -> None:
    cells = pd.DataFrame(fit.cells)
    dense = cells[cells["arch"] == "dense"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, var, other in ((axes[0], "n", "d"), (axes[1], "d", "n")):
        for o in sorted(dense[other].unique()):
            sub = dense[dense[other] == o].sort_values(var)
            line = ax.plot(sub[var], sub[key], "o", label=f"{other.upper()}={o / 1e6:.2f}M")[0]
            xs = np.geomspace(dense[var].min() / 1.5, dense[var].max() * 3, 50)
            args = [(x, o) if var == "n" else (o, x) for x in xs]
            ax.plot(xs, [law.predict(*a) for a in args], "-", color=line.get_color())
            bands = np.array([law.interval(*a) for a in args])
            ax.fill_between(xs, bands[:, 0], bands[:, 1], color=line.get_color(), alpha=0.15)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlabel=f"{var.upper()} ({'params' if var == 'n' else 'tokens'})", ylabel=ylabel)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _loss_contours(fit: ScalingFit, path: Path) -> None:
    cells = pd.DataFrame(fit.cells)
    ns = np.geomspace(cells["n"].min() / 2, cells["n"].max() * 4, 60)
    ds = np.geomspace(cells["d"].min() / 2, cells["d"].max() * 4, 60)
    nn, dd = np.meshgrid(ns, ds)
    zz = np.vectorize(fit.loss.predict)(nn, dd)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    cs = ax.contour(nn, dd, zz, levels=12)
    ax.clabel(cs, fontsize=7)
    ax.scatter(cells["n"], cells["d"], c=["C0" if a == "dense" else "C3" for a in cells["arch"]], s=20)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="N (non-embedding params)", ylabel="D (tokens)", title="fitted L(N, D); red = MoE cells")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def coefficient_rows(fit: ScalingFit) -> list[tuple[str, str]]:
    rows = []
    for name, law in (("lr_opt(N, D)", fit.lr), ("batch_opt(N, D) [tokens]", fit.batch),
                      ("lr_opt(C)", fit.lr_c), ("batch_opt(C) [tokens]", fit.batch_c)):
        terms = []
        for i, v in enumerate(law.variables):
            lo, hi = law.exponent_interval(i)
            terms.append(f"{v}^{law.exps[i]:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        rows.append((name, f"{np.exp(law.log_a):.4g} * " + " * ".join(terms) + f"  (R2 {law.r2:.2f})"))
    lw = fit.loss
    rows.append(("L(N, D)", f"{lw.E:.3f} + {lw.A:.3g}/N^{lw.alpha:.3f} + {lw.B:.3g}/D^{lw.beta:.3f}"))
    for name, (a, b) in DEEPSEEK.items():
        rows.append((f"DeepSeek LLM {name}", f"{a} * C^{b:+.4f}"))
    for m in fit.moe_equivalent:
        rows.append((f"MoE active N={m['active_n'] / 1e6:.2f}M at D={m['d'] / 1e6:.2f}M",
                     f"loss {m['loss']:.3f} = dense N {m['dense_equivalent_n'] / 1e6:.2f}M"))
    return rows


def write_report(fit: ScalingFit, df: pd.DataFrame, out_dir: str | Path, extra_rows: list[tuple[str, str]] = ()) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _loss_vs_lr(df, out / "loss_vs_lr.png")
    _optimum_vs(fit, "lr_opt", fit.lr, out / "lr_opt.png", "optimal learning rate")
    _optimum_vs(fit, "batch_opt", fit.batch, out / "batch_opt.png", "optimal batch (tokens)")
    _loss_contours(fit, out / "loss_contours.png")
    (out / "fit.json").write_text(fit.to_json())
    rows = "".join(f"<tr><td>{html.escape(a)}</td><td><code>{html.escape(b)}</code></td></tr>"
                   for a, b in [*coefficient_rows(fit), *extra_rows])
    imgs = "".join(f'<h3>{n}</h3><img src="{n}.png" width="800">' for n in ("loss_vs_lr", "lr_opt", "batch_opt", "loss_contours"))
    (out / "report.html").write_text(
        f"<html><head><title>qwenflow scaling laws</title></head><body><h1>Scaling-law fit</h1>"
        f"<p>{fit.n_points} sweep points; 90% bootstrap intervals in brackets.</p>"
        f"<table border=1 cellpadding=4>{rows}</table>{imgs}</body></html>")
    return out
