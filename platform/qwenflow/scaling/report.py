"""Plots and an HTML page for a scaling-law fit: loss vs LR per size, optimal LR/B vs N, D and compute (with
DeepSeek LLM's published laws), loss contours, per-cell optima with grid-edge flags, and the sweep's cost."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .fit import ScalingFit  # noqa: E402
from .laws import PowerLaw  # noqa: E402

# DeepSeek LLM (arXiv 2401.02954, eq. 1): eta_opt = 0.3118 C^-0.1250, B_opt = 0.2920 C^0.3271 (tokens), fitted on
# 1e17-3e20 FLOPs of compute, with C = M D (M = non-embedding FLOPs per token, ~6N).
DEEPSEEK = {"lr_c": (0.3118, -0.1250), "batch_c": (0.2920, 0.3271)}
DEEPSEEK_C_RANGE = (1e17, 3e20)


def deepseek(key: str, c: float) -> float:
    a, b = DEEPSEEK[key]
    return a * c**b


def _loss_vs_lr(df: pd.DataFrame, path: Path) -> None:
    ds = sorted(df["d"].unique())
    fig, axes = plt.subplots(1, max(1, len(ds)), figsize=(6 * max(1, len(ds)), 4), squeeze=False)
    for ax, d in zip(axes[0], ds):
        for (arch, n), sub in df[df["d"] == d].groupby(["arch", "n"]):
            best_b = sub.loc[sub["loss"].idxmin(), "batch"]  # the line through the best point the fit reads
            s = sub[sub["batch"] == best_b].sort_values("lr")
            ax.plot(s["lr"], s["loss"], "o-", label=f"{arch} N={n / 1e6:.2f}M (B={best_b:.0f} tok)")
        ax.set_xscale("log")
        ax.set(xlabel="learning rate", ylabel="validation loss", title=f"D = {d / 1e6:.3f}M tokens")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _scatter_cells(ax, sub: pd.DataFrame, x: str, key: str, label: str):
    """Bracketed optima filled, grid-edge values hollow (they bound the optimum, they are not it)."""
    inside = sub[sub[f"{key}_edge"] == ""]
    edge = sub[sub[f"{key}_edge"] != ""]
    line = ax.plot(inside[x], inside[f"{key}_opt"], "o", label=label)[0]
    ax.plot(edge[x], edge[f"{key}_opt"], "o", mfc="none", color=line.get_color())
    return line.get_color()


def _optimum_vs(fit: ScalingFit, key: str, law: PowerLaw | None, path: Path, ylabel: str) -> None:
    cells = pd.DataFrame(fit.cells)
    dense = cells[cells["arch"] == "dense"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, var, other in ((axes[0], "n", "d"), (axes[1], "d", "n")):
        for o in sorted(dense[other].unique()):
            sub = dense[dense[other] == o].sort_values(var)
            color = _scatter_cells(ax, sub, var, key, f"{other.upper()}={o / 1e6:.3f}M")
            if law is None:
                continue
            xs = np.geomspace(dense[var].min() / 1.5, dense[var].max() * 3, 50)
            args = [(x, o) if var == "n" else (o, x) for x in xs]
            _law_line(ax, xs, args, law, color)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(
            xlabel=f"{var.upper()} ({'params' if var == 'n' else 'tokens'})",
            ylabel=ylabel,
            title="hollow = at grid edge (left out)" + ("" if law is None or law.reliable else "; dotted = indicative"),
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _law_line(ax, xs, args, law, color, label=None) -> None:
    """A fitted law's curve (dotted when indicative only) with its confidence band."""
    ax.plot(xs, [law.predict(*a) for a in args], "-" if law.reliable else ":", color=color, label=label)
    bands = np.array([law.interval(*a) for a in args])
    ax.fill_between(xs, bands[:, 0], bands[:, 1], color=color, alpha=0.12)


def _vs_compute(fit: ScalingFit, path: Path) -> None:
    """Optimal LR and batch against C = 6ND, our fit beside DeepSeek LLM's law evaluated at our compute."""
    cells = pd.DataFrame(fit.cells)
    dense = cells[cells["arch"] == "dense"].assign(c=lambda t: 6 * t["n"] * t["d"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    cs = np.geomspace(dense["c"].min() / 2, dense["c"].max() * 2, 50)
    for ax, key, law, ds_key, ylabel in (
        (axes[0], "lr", fit.lr_c, "lr_c", "optimal learning rate"),
        (axes[1], "batch", fit.batch_c, "batch_c", "optimal batch (tokens)"),
    ):
        _scatter_cells(ax, dense, "c", key, "sweep cells")
        if law is not None:
            _law_line(ax, cs, [(c,) for c in cs], law, "C0", label=f"fit: C^{law.exps[0]:+.3f}")
        ax.plot(
            cs,
            [deepseek(ds_key, c) for c in cs],
            "--",
            color="C3",
            label=f"DeepSeek LLM: {DEEPSEEK[ds_key][0]} C^{DEEPSEEK[ds_key][1]:+.4f}",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlabel="C = 6ND (FLOPs)", ylabel=ylabel)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _loss_contours(fit: ScalingFit, path: Path) -> None:
    cells = pd.DataFrame(fit.cells)
    ns = np.geomspace(cells["n"].min() / 2, cells["n"].max() * 4, 60)
    ds = np.geomspace(cells["d"].min() / 2, cells["d"].max() * 4, 60)
    nn, dd = np.meshgrid(ns, ds)
    zz = fit.loss.predict(nn, dd)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    cs = ax.contour(nn, dd, zz, levels=12)
    ax.clabel(cs, fontsize=7)
    ax.scatter(cells["n"], cells["d"], c=["C0" if a == "dense" else "C3" for a in cells["arch"]], s=20)
    ax.set_xscale("log")
    ax.set_yscale("log")
    title = "fitted L(N, D); red = MoE cells" + ("" if fit.loss.well_defined else "\n(degenerate: see the table)")
    ax.set(xlabel="N (non-embedding params)", ylabel="D (tokens)", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _law_text(law: PowerLaw | None) -> str:
    if law is None:
        return "undefined: too few sweep cells"
    terms = []
    for i, v in enumerate(law.variables):
        lo, hi = law.exponent_interval(i)
        terms.append(f"{v}^{law.exps[i]:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    text = f"{np.exp(law.log_a):.4g} * " + " * ".join(terms) + f"  (R2 {law.r2:.2f}, {law.cells} cells)"
    if not law.reliable:
        text = "INDICATIVE ONLY: " + text
    return text + (f"; {law.note}" if law.note else "")


def coefficient_rows(fit: ScalingFit) -> list[tuple[str, str]]:
    rows = [
        (name, _law_text(law))
        for name, law in (
            ("lr_opt(N, D)", fit.lr),
            ("batch_opt(N, D) [tokens]", fit.batch),
            ("lr_opt(C)", fit.lr_c),
            ("batch_opt(C) [tokens]", fit.batch_c),
        )
    ]
    lw = fit.loss
    iv = {k: lw.param_interval(k) for k in ("E", "alpha", "beta")}
    rows.append(
        (
            "L(N, D)",
            f"{lw.E:.3f} [{iv['E'][0]:.3f}, {iv['E'][1]:.3f}] + {lw.A:.3g}/N^{lw.alpha:.3f} "
            f"[{iv['alpha'][0]:.3f}, {iv['alpha'][1]:.3f}] + {lw.B:.3g}/D^{lw.beta:.3f} "
            f"[{iv['beta'][0]:.3f}, {iv['beta'][1]:.3f}]"
            + (f"  DEGENERATE: {lw.note}" if lw.note else "  (well defined)"),
        )
    )
    for m in fit.moe_equivalent:
        value = (
            f"dense N {m['dense_equivalent_n'] / 1e6:.3f}M"
            if m.get("dense_equivalent_n") is not None
            else f"undefined: {m.get('reason', '')}"
        )
        rows.append(
            (f"MoE active N={m['active_n'] / 1e6:.2f}M at D={m['d'] / 1e6:.3f}M", f"loss {m['loss']:.3f} = {value}")
        )
    return rows


def deepseek_rows(fit: ScalingFit) -> list[tuple[str, str]]:
    """Our compute exponents beside DeepSeek LLM's, and their law evaluated at our compute."""
    rows = []
    for key, law, name in (("lr_c", fit.lr_c, "eta_opt"), ("batch_c", fit.batch_c, "B_opt")):
        a, b = DEEPSEEK[key]
        ours = (
            "undefined"
            if law is None
            else (
                f"{law.exps[0]:+.3f} [{law.exponent_interval(0)[0]:+.3f}, {law.exponent_interval(0)[1]:+.3f}]"
                + ("" if law.reliable else " (indicative)")
            )
        )
        rows.append((f"{name} exponent in C: ours vs DeepSeek LLM", f"{ours} vs {b:+.4f} ({name} = {a} C^{b:+.4f})"))
    cells = pd.DataFrame(fit.cells)
    dense = cells[cells["arch"] == "dense"]
    for _, c in dense.sort_values(["n", "d"]).iterrows():
        comp = 6 * c["n"] * c["d"]
        rows.append(
            (
                f"N={c['n'] / 1e6:.2f}M D={c['d'] / 1e6:.3f}M, C={comp:.2g}",
                f"grid optimum lr {c['lr_opt']:.3g}{' (' + c['lr_edge'] + ' edge)' if c['lr_edge'] else ''}, "
                f"B {c['batch_opt']:.0f} tok{' (' + c['batch_edge'] + ' edge)' if c['batch_edge'] else ''}; "
                f"DeepSeek law: lr {deepseek('lr_c', comp):.3g}, B {deepseek('batch_c', comp):.0f} tok",
            )
        )
    return rows


def deepseek_notes(fit: ScalingFit, df: pd.DataFrame) -> str:
    """Why our exponents can differ from DeepSeek LLM's, with this sweep's own figures."""
    cells = pd.DataFrame(fit.cells)
    dense = cells[cells["arch"] == "dense"]
    c = 6 * dense["n"] * dense["d"]
    steps = df["d"] / df["batch"]
    gap = np.log10(DEEPSEEK_C_RANGE[0] / c.max())
    return (
        "<p><b>Why the exponents differ.</b> "
        f"(1) Scale: these cells span C = {c.min():.2g}-{c.max():.2g} FLOPs, {gap:.0f}+ orders of magnitude below "
        f"DeepSeek LLM's {DEEPSEEK_C_RANGE[0]:.0e}-{DEEPSEEK_C_RANGE[1]:.0e}; a power law fitted there need not hold "
        f"here, and the loss at these sizes is still near unigram level. (2) Tokens per point: "
        f"{df['d'].min() / 1e3:.0f}k-{df['d'].max() / 1e3:.0f}k tokens, {steps.min():.0f}-{steps.max():.0f} optimizer "
        "steps per run, so every run is far from convergence and the number of steps dominates: a smaller batch "
        "buys more steps, which is why the batch optimum sits at or below the smallest batch tried and the fitted "
        "batch exponent is weak (DeepSeek's runs take thousands of steps with a warmup of 2000). "
        "(3) CPU: 2 shared cores cap the ladder at <1M non-embedding parameters and a few hundred thousand tokens; "
        "the timing does not change the losses, but it limits how many rungs (and so how wide an interval) a "
        "sweep can afford. DeepSeek's C also counts attention FLOPs (M = non-embedding FLOPs per token), ours "
        "is 6ND; at sequence length 128 the difference is small next to the above.</p>"
    )


def sweep_cost_rows(df: pd.DataFrame) -> list[tuple[str, str]]:
    wall = df["wall_s"].dropna() if "wall_s" in df else pd.Series(dtype=float)
    if wall.empty:
        return []
    hours = wall.sum() / 3600
    return [
        (
            "sweep cost (training time of the points, from MLflow wall_s)",
            f"{len(wall)} points, {hours * 60:.1f} min, {len(wall) / hours:.0f} points/hour "
            f"(median {wall.median():.0f} s/point)",
        )
    ]


def _cells_table(fit: ScalingFit) -> str:
    cells = pd.DataFrame(fit.cells)
    if cells.empty:
        return ""
    cols = [
        "arch",
        "model",
        "n",
        "d",
        "points",
        "loss",
        "best_lr",
        "best_batch",
        "lr_opt",
        "lr_edge",
        "batch_opt",
        "batch_edge",
    ]
    t = cells[[c for c in cols if c in cells]].sort_values(["arch", "n", "d"]).copy()
    t["lr_edge"] = t["lr_edge"].replace("", "bracketed")
    t["batch_edge"] = t["batch_edge"].replace("", "bracketed")
    return t.to_html(index=False, float_format=lambda v: f"{v:.4g}")


def write_report(
    fit: ScalingFit, df: pd.DataFrame, out_dir: str | Path, extra_rows: Sequence[tuple[str, str]] = (), notes: str = ""
) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _loss_vs_lr(df, out / "loss_vs_lr.png")
    _optimum_vs(fit, "lr", fit.lr, out / "lr_opt.png", "optimal learning rate")
    _optimum_vs(fit, "batch", fit.batch, out / "batch_opt.png", "optimal batch (tokens)")
    _vs_compute(fit, out / "vs_compute.png")
    _loss_contours(fit, out / "loss_contours.png")
    (out / "fit.json").write_text(fit.to_json())

    def table(rows):
        return (
            "<table border=1 cellpadding=4>"
            + "".join(f"<tr><td>{html.escape(a)}</td><td><code>{html.escape(b)}</code></td></tr>" for a, b in rows)
            + "</table>"
        )

    imgs = "".join(
        f'<h3>{n}</h3><img src="{n}.png" width="800">'
        for n in ("loss_vs_lr", "lr_opt", "batch_opt", "vs_compute", "loss_contours")
    )
    (out / "report.html").write_text(
        f"<html><head><title>qwenflow scaling laws</title></head><body><h1>Scaling-law fit</h1>"
        f"<p>{fit.n_points} sweep points; laws fitted on dense sizes {[f'{n / 1e6:.2f}M' for n in fit.fitted_n]}; "
        f"90% bootstrap intervals in brackets. A cell's optimum is the vertex of a parabola in log space through "
        f"the best grid value and its neighbours; at the grid edge it is only a bound and is left out.</p>"
        f"<h2>Fitted laws</h2>{table(coefficient_rows(fit))}"
        f"<h2>Held-out check and cost</h2>{table([*extra_rows, *sweep_cost_rows(df)])}"
        f"<h2>Against DeepSeek LLM</h2>{table(deepseek_rows(fit))}{deepseek_notes(fit, df)}{notes}"
        f"<h2>Per-cell optima</h2>{_cells_table(fit)}{imgs}</body></html>"
    )
    return out
