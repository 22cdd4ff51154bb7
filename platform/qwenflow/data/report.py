"""Human-readable views of the data stage's report: rich tables for the terminal and a mixture bar chart."""

from __future__ import annotations

from rich.table import Table


def mixture_table(mix: dict) -> Table:
    t = Table(title="domain mixture (share of bytes)")
    for c in ("domain", "before", "target", "after"):
        t.add_column(c, justify="right" if c != "domain" else "left")
    domains = sorted(set(mix.get("before", {})) | set(mix.get("target", {})) | set(mix.get("after", {})))
    for d in domains:
        t.add_row(
            d,
            f"{mix.get('before', {}).get(d, 0):.3f}",
            f"{mix.get('effective_target', {}).get(d, mix['target'].get(d, 0)):.3f}",
            f"{mix.get('after', {}).get(d, 0):.3f}",
        )
    if mix.get("missing_domains"):
        t.caption = f"no data for {', '.join(mix['missing_domains'])}: their share went to the others"
    return t


def drops_table(drops: dict, title: str = "dropped documents by reason") -> Table:
    t = Table(title=title)
    t.add_column("reason")
    t.add_column("count", justify="right")
    for k, v in sorted(drops.items(), key=lambda kv: -kv[1]):
        t.add_row(k, str(v))
    return t


def steps_table(steps: dict) -> Table:
    t = Table(title="time per step")
    for c in ("step", "MB in", "seconds", "MB/s", "share"):
        t.add_column(c, justify="right" if c != "step" else "left")
    total = sum(s["seconds"] for s in steps.values()) or 1
    for k, s in steps.items():
        t.add_row(k, f"{s['mb']:.1f}", f"{s['seconds']:.1f}", f"{s['mb_per_s']:.1f}", f"{s['seconds'] / total:.0%}")
    return t


def mixture_plot(mix: dict):
    # lazy: imports matplotlib, numpy (363 ms)
    import matplotlib

    matplotlib.use("Agg")
    # lazy: imports matplotlib, numpy (862 ms)
    import matplotlib.pyplot as plt
    import numpy as np

    domains = sorted(set(mix.get("before", {})) | set(mix.get("target", {})))
    x = np.arange(len(domains))
    fig, ax = plt.subplots(figsize=(6, 3))
    for i, (key, label) in enumerate([("before", "before"), ("effective_target", "target"), ("after", "after")]):
        ax.bar(x + (i - 1) * 0.27, [mix.get(key, {}).get(d, 0) for d in domains], 0.27, label=label)
    ax.set_xticks(x, domains)
    ax.set_ylabel("share of bytes")
    ax.legend()
    fig.tight_layout()
    return fig
