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
    checks: list[dict] = []
    for g in gates:

        def check(rule: str, passed: bool, reason: str, metric: str = g.metric, **numbers) -> None:
            """One check's record; `reason` follows "pass|FAIL <metric>"."""
            verdict = f"{'pass' if passed else 'FAIL'} {metric}{reason}"
            checks.append({"metric": metric, "rule": rule, **numbers, "passed": passed, "reason": verdict})

        value = have.get(g.metric)
        if value is None:
            check("present", False, f": not in the report (it has: {', '.join(sorted(have)) or 'nothing'})")
            continue
        if g.min is not None:
            ok = value >= g.min
            check("min", ok, f" = {value:.4g} {'>=' if ok else '<'} min {g.min:g}", value=value, threshold=g.min)
        if g.max is not None:
            ok = value <= g.max
            check("max", ok, f" = {value:.4g} {'<=' if ok else '>'} max {g.max:g}", value=value, threshold=g.max)
        if g.max_regression is not None:
            ref = base.get(g.metric)
            if baseline is None:
                check("max_regression", True, ": no baseline yet (first model), regression not checked", value=value)
            elif ref is None:
                check("max_regression", False, ": the baseline has no such metric to compare against", value=value)
            else:
                drop = (value - ref) if lower_is_better(g.metric) else (ref - value)
                ok = drop <= g.max_regression + 1e-12
                reason = f" = {value:.4g} vs baseline {ref:.4g} (regression {max(drop, 0):.4g}, allowed "
                reason += f"{g.max_regression:g})"
                check("max_regression", ok, reason, value=value, baseline=ref, threshold=g.max_regression)
    checks.sort(key=lambda c: c["passed"])
    passed = all(c["passed"] for c in checks)
    return GateResult(passed, [c["reason"] for c in checks] or ["pass: no gates configured"], checks)
