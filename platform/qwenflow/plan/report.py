"""The memory plan as the table `qwenflow compile` and `submit` print (narrow enough for an 80-column terminal)."""

from __future__ import annotations

from rich.table import Table


def render(plans, title: str) -> Table:
    devices = list(dict.fromkeys(p.device for p in plans))
    t = Table(title=f"memory plan: {title} (GiB per GPU)", caption="available: " + "; ".join(devices))
    for name in ("stage", "nodes×GPUs", "strategy", "estimate", "avail", "peak set by", "fits"):
        t.add_column(name, no_wrap=True)
    for p in plans:
        t.add_row(
            p.stage,
            f"{p.nodes} x {p.gpus}" if p.gpus else f"{p.nodes} x CPU",
            p.strategy,
            f"{p.estimate.total:.1f}",
            f"{p.available_gib:.1f}",
            p.estimate.phase,
            "yes" if p.fits else "[bold red]no[/]",
        )
    return t
