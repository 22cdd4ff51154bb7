"""Quality gates: absolute floors/ceilings and no-regression against a baseline (the previous stage's report or
the current champion's metrics). A metric the gate names but the report lacks fails the gate: a gate that cannot
be checked must not pass silently."""

from __future__ import annotations

from dataclasses import dataclass, field

from qwenflow.recipe.evaluation import Gate

from .report import lower_is_better


@dataclass
class GateResult:
    passed: bool
    reasons: list[str]  # one line per check, failures first
    checks: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reasons": self.reasons, "checks": self.checks}


def _metrics(report) -> dict:
    if report is None:
        return {}
    return report.get("metrics", report) if isinstance(report, dict) else {}


def check_gates(report: dict, gates, baseline: dict | None = None) -> GateResult:
    """`gates`: Gate objects or dicts ({metric, min, max, max_regression}); `baseline`: a report or a metrics dict."""
    gates = [g if isinstance(g, Gate) else Gate(**g) for g in gates]
    have, base = _metrics(report), _metrics(baseline)
    checks = []
    for g in gates:
        value = have.get(g.metric)
        if value is None:
            checks.append(
                {
                    "metric": g.metric,
                    "rule": "present",
                    "passed": False,
                    "reason": f"FAIL {g.metric}: not in the report (it has: {', '.join(sorted(have)) or 'nothing'})",
                }
            )
            continue
        if g.min is not None:
            ok = value >= g.min
            checks.append(
                {
                    "metric": g.metric,
                    "rule": "min",
                    "value": value,
                    "threshold": g.min,
                    "passed": ok,
                    "reason": f"{'pass' if ok else 'FAIL'} {g.metric} = {value:.4g} {'>=' if ok else '<'} "
                    f"min {g.min:g}",
                }
            )
        if g.max is not None:
            ok = value <= g.max
            checks.append(
                {
                    "metric": g.metric,
                    "rule": "max",
                    "value": value,
                    "threshold": g.max,
                    "passed": ok,
                    "reason": f"{'pass' if ok else 'FAIL'} {g.metric} = {value:.4g} {'<=' if ok else '>'} "
                    f"max {g.max:g}",
                }
            )
        if g.max_regression is not None:
            ref = base.get(g.metric)
            if baseline is None:
                checks.append(
                    {
                        "metric": g.metric,
                        "rule": "max_regression",
                        "value": value,
                        "passed": True,
                        "reason": f"pass {g.metric}: no baseline yet (first model), regression not checked",
                    }
                )
                continue
            if ref is None:
                checks.append(
                    {
                        "metric": g.metric,
                        "rule": "max_regression",
                        "value": value,
                        "passed": False,
                        "reason": f"FAIL {g.metric}: the baseline has no such metric to compare against",
                    }
                )
                continue
            drop = (value - ref) if lower_is_better(g.metric) else (ref - value)
            ok = drop <= g.max_regression + 1e-12
            checks.append(
                {
                    "metric": g.metric,
                    "rule": "max_regression",
                    "value": value,
                    "baseline": ref,
                    "threshold": g.max_regression,
                    "passed": ok,
                    "reason": f"{'pass' if ok else 'FAIL'} {g.metric} = {value:.4g} vs baseline {ref:.4g} "
                    f"(regression {max(drop, 0):.4g}, allowed {g.max_regression:g})",
                }
            )
    checks.sort(key=lambda c: c["passed"])
    passed = all(c["passed"] for c in checks)
    return GateResult(passed, [c["reason"] for c in checks] or ["pass: no gates configured"], checks)
