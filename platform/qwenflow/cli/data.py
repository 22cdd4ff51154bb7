"""`qwenflow data prepare|validate|sources`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import RecipeOpt, SetOpt, clean_errors, console, err_console, get_recipe

app = typer.Typer(help="Prepare, validate and inspect datasets.", no_args_is_help=True)


@app.command("prepare")
def prepare(
    out: Annotated[Path, typer.Option(help="Output directory for corpus/, sft/, rl/, preferences/, eval/")],
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    track: Annotated[bool, typer.Option(help="Log the stage to MLflow (qwenflow.tracking)")] = True,
):
    """Load the recipe's sources, clean, dedup, filter, mix, decontaminate; write validated datasets."""
    # lazy: imports pandas, pyarrow, sklearn (seconds to import)
    from qwenflow.data.contracts import DataContractError
    from qwenflow.data.prepare import prepare_data
    from qwenflow.data.report import drops_table, mixture_table, steps_table

    r = get_recipe(recipe, set_)
    with clean_errors():
        try:
            if track:
                # lazy: kept out of `qwenflow --help` start-up (48 ms)
                from qwenflow.tracking import stage_run

                with stage_run("prepare_data", r):  # the MLflow run of the stage of that name
                    rep = prepare_data(r, out, say=console.print)
            else:
                rep = prepare_data(r, out, say=console.print)
        except DataContractError as e:
            err_console.print(f"[bold red]data contract failed:[/]\n{e}", highlight=False, soft_wrap=True)
            raise typer.Exit(3) from None
    console.print(mixture_table(rep["mixture"]))
    console.print(drops_table(rep["drops"]))
    if rep["posttrain_drops"]:
        console.print(drops_table(rep["posttrain_drops"], "dropped post-training examples by reason"))
    console.print(steps_table(rep["steps"]))
    console.print(
        f"corpus: {rep['corpus_rows']} docs, {rep['corpus_bytes']['train'] / 1e6:.1f} MB train from "
        f"{rep['raw_mb']:.1f} MB raw; post-training: {rep['posttrain']}; contamination hits: "
        f"{rep['contamination'] or 'none'} / {rep['posttrain_contamination'] or 'none'}"
    )
    console.print(f"wrote {out} in {rep['seconds']:.0f} s; all contracts passed")


@app.command("validate")
def validate(
    kind: Annotated[str, typer.Argument(help="corpus | packed | sft | preferences | rl | eval")],
    directory: Annotated[Path, typer.Argument(help="Dataset directory (Parquet + manifest.json)")],
    report_dir: Annotated[
        Path | None, typer.Option(help="Where to save the HTML/JSON report (default: DIRECTORY/reports)")
    ] = None,
):
    """Check a dataset directory against its Great Expectations contract."""
    # lazy: imports pandas, pyarrow, numpy (seconds to import)
    from qwenflow.data.contracts import DataContractError, validate_dataset
    from qwenflow.data.shard_contracts import validate_sharded

    with clean_errors():
        try:
            if kind == "packed":  # one contract run per shard, aggregated
                res = validate_sharded(kind, directory, report_dir or directory / "reports")
            else:
                res = validate_dataset(kind, directory, report_dir or directory / "reports")
        except DataContractError as e:
            err_console.print(f"[bold red]data contract failed:[/]\n{e}", highlight=False, soft_wrap=True)
            raise typer.Exit(3) from None
    console.print(res.summary())
    console.print(f"report: {res.report_html}")


@app.command("sources")
def sources():
    """List the named real sources, where they come from and whether they are installed here."""
    # lazy: kept out of `qwenflow --help` start-up (22 ms)
    from rich.table import Table

    from qwenflow.data.sources import SOURCES

    t = Table(title="named data sources")
    for c in ("name", "domain", "license", "where", "install"):
        t.add_column(c)
    for s in SOURCES.values():
        t.add_row(s.name, s.domain, s.license, s.where, s.install)
    console.print(t)
