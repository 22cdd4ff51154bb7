"""What a finished run produced, read from its stage events: times, artifacts, scores, gate, registry, Bento."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from qwenflow.stages import START, STEPS

from . import events

ORDER = STEPS[:-1]  # start_run and the stages, in pipeline order (finish_run emits no event)


def flat_scores(report: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of an evaluation report as task/metric names (booleans and counts of items left out).
    A qwenflow report carries its headline numbers in `metrics`; only those are taken when present."""
    if isinstance((report or {}).get("metrics"), dict) and not prefix:
        report = report["metrics"]
    out: dict[str, float] = {}
    for k, v in (report or {}).items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_scores(v, name + "/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith(("n_", "num_")):
            out[name] = float(v)
    return out


@dataclass
class RunSummary:
    wall_s: float
    stages: dict[str, dict] = field(default_factory=dict)  # last event per stage
    run_dir: str = ""
    log: str = ""

    def status(self, stage: str) -> str:
        return self.stages.get(stage, {}).get("status", "not run")

    def result(self, stage: str) -> dict:
        return self.stages.get(stage, {}).get("result") or {}

    @property
    def stage_seconds(self) -> float:
        return sum(
            s.get("seconds", 0.0) for s in self.stages.values() if s.get("status") in ("done", "cached", "skipped")
        )

    @property
    def overhead_s(self) -> float:
        return max(self.wall_s - self.stage_seconds, 0.0)

    @property
    def failed(self) -> tuple[str, str] | None:
        for name, s in self.stages.items():
            if s.get("status") == "failed":
                return name, s.get("error", "")
        return None

    def mlflow_link(self) -> str:
        start = self.result(START)
        if not start:
            return ""
        uri, exp, run = start["tracking_uri"], start["experiment_id"], start["parent_run_id"]
        if uri.startswith("http"):
            return f"{uri.rstrip('/')}/#/experiments/{exp}/runs/{run}"
        return f"mlflow ui --backend-store-uri {uri}  ->  http://127.0.0.1:5000/#/experiments/{exp}/runs/{run}"


def summarize(events_path: str | Path, wall_s: float, run_dir: str = "", log: str = "") -> RunSummary:
    return RunSummary(wall_s=wall_s, stages=events.latest_by_stage(events.read(events_path)), run_dir=run_dir, log=log)


def render(summary: RunSummary):
    """A rich renderable: one row per stage, then the run's headline results."""
    # lazy: 81 ms to import, needed only here
    from rich.console import Group
    from rich.table import Table

    table = Table(title="qwenflow run", show_lines=False)
    for col in ("stage", "status", "seconds", "output"):
        table.add_column(col)
    for name in ORDER:
        s = summary.stages.get(name)
        if not s:
            continue
        secs = f"{s.get('seconds', 0):.1f}" if "seconds" in s else ""
        table.add_row(name, s["status"], secs, s.get("output", "") or "")
    lines = [
        f"wall time {summary.wall_s:.1f} s; stages {summary.stage_seconds:.1f} s; "
        f"orchestration overhead {summary.overhead_s:.1f} s "
        f"({100 * summary.overhead_s / max(summary.wall_s, 1e-9):.1f}%)"
    ]
    if link := summary.mlflow_link():
        lines.append(f"MLflow parent run: {link}")
    scores = flat_scores(summary.result("eval"))
    if scores:
        lines.append("scores: " + ", ".join(f"{k}={v:.4g}" for k, v in list(scores.items())[:12]))
    gate = summary.result("gate")
    if gate:
        lines.append(
            f"gate: {'PASSED' if gate.get('passed') else 'FAILED'}"
            + "".join(f"\n  {r}" for r in gate.get("reasons", []))
        )
    if reg := summary.result("register"):
        lines.append(f"registered: {reg.get('uri')}")
    if bento := summary.result("build_bento"):
        lines.append(
            f"Bento: {bento.get('bento')} in {os.environ.get('BENTOML_HOME', '~/bentoml')} "
            f"(serve: bentoml serve {bento.get('bento')})"
        )
    if dep := summary.result("deploy"):
        lines.append("deploy: " + ", ".join(f"{k}={v}" for k, v in dep.items()))
    if failed := summary.failed:
        lines.append(f"[bold red]FAILED at stage {failed[0]}[/]: {failed[1]}")
    if summary.log:
        lines.append(f"full log: {summary.log}")
    # lazy: 60 ms to import, needed only here
    from rich.text import Text

    return Group(table, *[Text.from_markup(line) if line.startswith("[bold") else Text(line) for line in lines])
