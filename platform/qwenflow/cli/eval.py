"""`qwenflow eval`: evaluate a model, check the recipe's gates, compare reports, register; `qwenflow promote`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import RecipeOpt, SetOpt, clean_errors, console, err_console, get_recipe

app = typer.Typer(help="Evaluate models on real benchmarks, gate them, register them.", invoke_without_command=True)
promote_app = typer.Typer()  # added without a name: `qwenflow promote` sits at the top level


def _errors():
    """clean_errors plus the evaluation's own expected failures (registry, tracking)."""
    # lazy: kept out of `qwenflow --help` start-up (44 ms)
    from qwenflow.tracking import TrackingUnavailable

    class _Ctx:
        def __enter__(self):
            self.inner = clean_errors()
            self.inner.__enter__()

        def __exit__(self, et, e, tb):
            if isinstance(e, TrackingUnavailable):
                err_console.print(f"[bold red]error:[/] {e}", highlight=False)
                raise typer.Exit(2) from None
            return self.inner.__exit__(et, e, tb)

    return _Ctx()


@app.callback()
def eval_main(
    ctx: typer.Context,
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="Model directory (save_pretrained) or .gguf file")
    ] = None,
    suite: Annotated[str, typer.Option(help="quick (subsets, ~1 min on the tiny model) or full")] = "quick",
    data: Annotated[
        Path | None, typer.Option("--data", help="Data stage output: eval/ tasks, corpus/val.parquet, preferences/")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where report.json and plots go")] = Path("eval-out"),
    task: Annotated[list[str] | None, typer.Option("--task", help="Only these tasks (repeatable)")] = None,
    limit: Annotated[int | None, typer.Option(help="Items per task (overrides the suite)")] = None,
    track: Annotated[bool, typer.Option(help="Log to MLflow")] = True,
    label: Annotated[str | None, typer.Option(help="Name of the model in comparisons")] = None,
    hhh_alignment: Annotated[
        Path | None,
        typer.Option(
            "--hhh-alignment",
            envvar="QWENFLOW_HHH_ALIGNMENT",
            help="Reward models: BIG-bench's hhh_alignment folder (no pip-installable package ships it)",
        ),
    ] = None,
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
):
    """Evaluate a model: `qwenflow eval --model DIR --suite quick [--data DIR] [--out DIR]`."""
    if ctx.invoked_subcommand is not None:
        return
    if model is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    r = get_recipe(recipe, set_)
    with _errors():
        # lazy: imports torch, transformers, accelerate (seconds to import)
        from qwenflow.eval.run import evaluate

        report = evaluate(
            model,
            out,
            suite=suite,
            recipe=r,
            data_dir=data,
            tasks=task,
            limit=limit,
            track=track,
            label=label,
            hhh_dir=hhh_alignment,
        )
    _print_report(report)
    if report["errors"]:
        raise typer.Exit(1)


def _print_report(report: dict) -> None:
    t = Table(title=f"{report['label']} ({report['suite']})")
    for col in ("task", "metric", "value", "± stderr", "n", "shots", "overlap (train docs)", "dataset sha256"):
        t.add_column(col, overflow="fold")  # full task and metric names even on a narrow terminal
    for name, r in report["tasks"].items():
        dec = r["dataset"].get("decontam", {})
        overlap = str(dec["overlapping_train_docs"]) if "overlapping_train_docs" in dec else "-"
        for m, v in r["metrics"].items():
            se = r["stderr"].get(m)
            t.add_row(
                name,
                m,
                f"{v:.4f}",
                f"{se:.4f}" if se is not None else "",
                str(r["n"]),
                str(r["shots"]),
                overlap,
                str(r["dataset"].get("sha256", ""))[:8],
            )
    console.print(t, width=None if console.is_terminal else 120)  # logs and pipes: room for every column
    for k, v in report["skipped"].items():
        console.print(f"[yellow]skipped[/] {k}: {v}", highlight=False)
    for k, v in report["errors"].items():
        err_console.print(f"[bold red]error[/] {k}: {v}", highlight=False)


@app.command("gate")
def gate(
    report: Annotated[Path, typer.Argument(help="report.json (or its directory)")],
    baseline: Annotated[Path | None, typer.Option(help="Previous stage's report to compare against")] = None,
    champion: Annotated[str | None, typer.Option(help="Registered model name: compare against its champion")] = None,
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
):
    """Check the recipe's gates; prints every check and exits 1 when any fails."""
    r = get_recipe(recipe, set_)
    with _errors():
        # lazy: kept out of `qwenflow --help` start-up (72 ms)
        from qwenflow.eval.gates import check_gates
        from qwenflow.eval.registry import champion_metrics
        from qwenflow.eval.report import read_report

        rep = read_report(report)
        base = read_report(baseline) if baseline else (champion_metrics(champion) if champion else None)
        res = check_gates(rep, r.eval.gates, base)
    for line in res.reasons:
        (console if line.startswith("pass") else err_console).print(line, highlight=False)
    console.print("[bold green]PASSED[/]" if res.passed else "[bold red]FAILED[/]")
    if not res.passed:
        raise typer.Exit(1)


@app.command("compare")
def compare_cmd(
    reports: Annotated[list[Path], typer.Argument(help="Reports in stage order (base, long-context, SFT, DPO, GRPO)")],
    plot: Annotated[Path, typer.Option(help="Where to save the comparison plot")] = Path("eval-compare.png"),
):
    """Print a table of every metric across models and save it as a plot."""
    with _errors():
        # lazy: kept out of `qwenflow --help` start-up (2 ms)
        from qwenflow.eval.report import compare, comparison_plot, read_report

        loaded = [read_report(p) for p in reports]
        labels, names, values = compare(loaded)
        comparison_plot(labels, names, values, plot)
    t = Table("metric", *labels, title="evaluation across models")
    for n, row in zip(names, values):
        t.add_row(n, *[f"{v:.4f}" if isinstance(v, (int, float)) else "-" for v in row])
    console.print(t, width=None if console.is_terminal else 120)
    console.print(f"plot: {plot}")


@app.command("register")
def register(
    model: Annotated[Path, typer.Option("--model", "-m", help="The evaluated model directory")],
    report: Annotated[Path, typer.Option(help="Its report.json (or directory)")],
    name: Annotated[
        str | None, typer.Option(help="Registered model name (default: recipe deploy.registered_model)")
    ] = None,
    baseline: Annotated[Path | None, typer.Option(help="Previous stage's report (default: the champion)")] = None,
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
):
    """Check the gates; if they pass, register the model and give it the alias `challenger`."""
    r = get_recipe(recipe, set_)
    name = name or getattr(r.deploy, "registered_model", None) or f"qwenflow-{r.name}"
    with _errors():
        # lazy: kept out of `qwenflow --help` start-up (72 ms)
        from qwenflow.eval.gates import check_gates
        from qwenflow.eval.registry import champion_metrics, register_model
        from qwenflow.eval.report import read_report

        rep = read_report(report)
        res = check_gates(rep, r.eval.gates, read_report(baseline) if baseline else champion_metrics(name))
        for line in res.reasons:
            (console if line.startswith("pass") else err_console).print(line, highlight=False)
        if not res.passed:
            err_console.print("[bold red]gates failed: not registered[/]")
            raise typer.Exit(1)
        version = register_model(model, name, rep, gate=res)
    console.print(f"registered {name} version {version} as @challenger")


@promote_app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name")],
    version: Annotated[str | None, typer.Option(help="Version to promote (default: the challenger)")] = None,
    reason: Annotated[str, typer.Option(help="Why (kept as a tag)")] = "",
    report: Annotated[Path | None, typer.Option(help="Evaluation report to attach as evidence")] = None,
):
    """`qwenflow promote NAME`: make the challenger (or --version) the champion, with evidence tags."""
    with _errors():
        # lazy: kept out of `qwenflow --help` start-up (75 ms)
        from qwenflow.eval.registry import promote as do_promote
        from qwenflow.eval.report import read_report

        res = do_promote(name, version, reason=reason, report=read_report(report) if report else None)
    console.print(f"{name}: champion -> version {res['version']} (was {res['previous'] or 'none'})")
    console.print_json(json.dumps({k: v for k, v in res.items() if k.startswith("qwenflow.")}))
