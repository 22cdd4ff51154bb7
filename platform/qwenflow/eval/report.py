"""The evaluation report: one JSON per evaluation (schema: docs/eval_report_schema.md), its MLflow logging, and the
comparison of several reports (table + plot) across the stages of a run."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from qwenflow.artifacts import atomic_write_text

SCHEMA_VERSION = 1
LOWER_IS_BETTER = re.compile(r"(_ppl|_bpb|perplexity|loss)$")


def lower_is_better(metric: str) -> bool:
    return bool(LOWER_IS_BETTER.search(metric))


def flat_metrics(tasks: dict) -> dict[str, float]:
    """{"mmlu/accuracy": 0.25, ...}: the names gates and MLflow use."""
    return {f"{t}/{m}": v for t, r in tasks.items() for m, v in r["metrics"].items()}


def write_report(report: dict, out_dir: str | Path) -> Path:

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    atomic_write_text(path, json.dumps(report, indent=2, default=str, allow_nan=True))
    return path


def read_report(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no evaluation report; run `qwenflow eval --model DIR --out DIR` first")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(report, dict) or "metrics" not in report:
        raise ValueError(f"{path}: not a qwenflow evaluation report (no 'metrics')")
    return report


def log_to_mlflow(report: dict, out_dir: Path) -> None:
    """Inside an active run: every finite metric, its stderr and n, and the report and plots as artifacts."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    import mlflow

    metrics = {k: v for k, v in report["metrics"].items() if isinstance(v, (int, float)) and math.isfinite(v)}
    for t, r in report["tasks"].items():
        for m, se in r.get("stderr", {}).items():
            if isinstance(se, (int, float)) and math.isfinite(se):
                metrics[f"{t}/{m}_stderr"] = se
        metrics[f"{t}/n"] = r["n"]
    mlflow.log_metrics(metrics)
    mlflow.set_tags(
        {"qwenflow.eval.suite": report["suite"], "qwenflow.model_sha256": report["model"].get("sha256", "")}
    )
    for f in sorted(Path(out_dir).glob("*")):
        if f.is_file() and f.suffix in (".json", ".png"):
            mlflow.log_artifact(str(f), "eval")


def summary_plot(report: dict, path: Path) -> Path | None:
    """Bar chart of the report's higher-is-better scores (accuracies, pass rates)."""
    # lazy: imports matplotlib, numpy (366 ms)
    import matplotlib

    matplotlib.use("Agg")
    # lazy: imports matplotlib, numpy (943 ms)
    import matplotlib.pyplot as plt

    items = [
        (k, v)
        for k, v in report["metrics"].items()
        if not lower_is_better(k)
        and isinstance(v, float)
        and math.isfinite(v)
        and 0 <= v <= 1
        and "mean_margin" not in k
    ]
    if not items:
        return None
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(items)), 3.6))
    ax.bar(range(len(items)), [v for _, v in items], color="tab:blue")
    ax.set_xticks(range(len(items)), [k for k, _ in items], rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title(f"{Path(report['model']['path']).name} ({report['suite']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare(
    reports: list[dict], labels: list[str] | None = None
) -> tuple[list[str], list[str], list[list[float | None]]]:
    """(labels, metric names, values[metric][model]) over the union of metrics, in first-seen order."""
    labels = labels or [r.get("label") or Path(r["model"]["path"]).name for r in reports]
    names = list(dict.fromkeys(k for r in reports for k in r["metrics"]))
    return labels, names, [[r["metrics"].get(n) for r in reports] for n in names]


def comparison_plot(labels, names, values, path: str | Path) -> Path:
    """One line per metric across the models in order (base -> long-context -> SFT -> DPO -> GRPO)."""
    # lazy: imports matplotlib, numpy (366 ms)
    import matplotlib

    matplotlib.use("Agg")
    # lazy: imports matplotlib, numpy (943 ms)
    import matplotlib.pyplot as plt

    keep = [
        (n, v)
        for n, v in zip(names, values)
        if not lower_is_better(n) and "margin" not in n and all(x is None or 0 <= x <= 1 for x in v)
    ]
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(labels)) + 3.5, max(4, 0.16 * len(keep))))
    for i, (n, v) in enumerate(keep):  # line style changes every 10 metrics so no two lines look alike
        ax.plot(
            range(len(labels)),
            [x if x is not None else float("nan") for x in v],
            marker="o",
            label=n,
            linestyle=("-", "--", ":", "-.")[(i // 10) % 4],
        )
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_ylabel("score")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, never over the lines
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
