"""`qwenflow scaling sweep|fit|predict`: hyperparameter scaling laws from the platform's own sweeps."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import clean_errors, console

app = typer.Typer(help="Hyperparameter scaling laws: sweep, fit, predict.", no_args_is_help=True)

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_count(text: str) -> float:
    """'7B' -> 7e9, '18T' -> 1.8e13, '1.5e9' -> 1.5e9."""
    m = re.fullmatch(r"\s*([0-9.]+(?:e[0-9+-]+)?)\s*([kmbgt]?)\s*", text.lower())
    if not m:
        raise typer.BadParameter(f"{text!r}: expected a number with an optional K/M/B/T suffix, e.g. 7B or 18T")
    return float(m.group(1)) * _SUFFIX.get(m.group(2), 1.0)


def _prepare(work: Path, base_recipe: str, data: Path | None, tokenizer: Path | None) -> tuple[Path, Path]:
    """Data and tokenizer for the sweep: given ones, or prepared once into the work dir."""
    from qwenflow.recipe import load_recipe

    recipe = load_recipe(base_recipe)
    if data is None:
        from qwenflow.data.prepare import prepare_data

        data = work / "data"
        if not (data / "corpus" / "train.parquet").is_file():
            prepare_data(recipe, data)
    if tokenizer is None:
        from qwenflow.tokenizer.build import build_tokenizer, iter_parquet_texts

        tokenizer = work / "tokenizer"
        if not (tokenizer / "tokenizer.json").is_file():
            build_tokenizer(recipe, tokenizer, iter_parquet_texts([data / "corpus" / "train.parquet"]))
    return data, tokenizer


@app.command("sweep")
def sweep(grid: Annotated[str, typer.Option(help="Shipped grid name or a grid YAML file")] = "tiny",
          work: Annotated[Path, typer.Option(help="Working directory (packed data, per-point runs)")] = Path("runs/scaling"),
          data: Annotated[Path | None, typer.Option(help="Prepared data dir (default: prepare into WORK/data)")] = None,
          tokenizer: Annotated[Path | None, typer.Option(help="Tokenizer dir (default: build into WORK/tokenizer)")] = None,
          model: Annotated[list[str] | None, typer.Option(help="Only these ladder models")] = None):
    """Run the grid's short pre-training runs; finished points (found in MLflow) are reused."""
    from qwenflow.scaling.grid import load_grid
    from qwenflow.scaling.sweep import run_sweep

    with clean_errors():
        g = load_grid(grid)
        data, tokenizer = _prepare(work, g.base_recipe, data, tokenizer)
        res = run_sweep(g, data, tokenizer, work, models=model)
    ran = [r for r in res if not r["reused"]]
    hours = sum(r["wall_s"] for r in ran) / 3600
    console.print(f"{len(res)} points ({len(res) - len(ran)} reused, {len(ran)} run in {hours * 60:.1f} min"
                  + (f", {len(ran) / hours:.0f} points/hour" if ran else "") + ")")


@app.command("fit")
def fit(out: Annotated[Path, typer.Option(help="Report directory (HTML + PNG + fit.json)")] = Path("runs/scaling/report"),
        sweep_name: Annotated[str | None, typer.Option("--sweep", help="Only points of this sweep (default: all)")] = None,
        grid: Annotated[str, typer.Option(help="Grid (for the held-out model)")] = "tiny",
        holdout_check: Annotated[bool, typer.Option(help="Train the held-out size at its predicted settings")] = True,
        work: Annotated[Path, typer.Option(help="Working directory of the sweep")] = Path("runs/scaling"),
        bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples")] = 500):
    """Fit LR/batch/loss laws from the sweep runs in MLflow; log the fit and its report to MLflow."""
    import mlflow
    import pandas as pd

    from qwenflow.scaling.fit import EXPERIMENT, FIT_TAG, collect_points, fit_scaling
    from qwenflow.scaling.grid import load_grid
    from qwenflow.scaling.holdout import fit_without, holdout_points, holdout_table, write_holdout
    from qwenflow.scaling.report import coefficient_rows, write_report
    from qwenflow.scaling.sweep import _client, run_point
    from qwenflow.tracking import ensure_reachable

    with clean_errors():
        mlflow.set_tracking_uri(ensure_reachable())
        df = collect_points(EXPERIMENT, sweep_name)
        if df.empty:
            raise ValueError("no finished sweep points in MLflow: run `qwenflow scaling sweep` first")
        g = load_grid(grid)
        extra = []
        holdout_n = None
        if g.holdout:
            sizes = sorted(df[df["arch"] == "dense"]["n"].unique())
            holdout_n = sizes[-1]
        result = fit_scaling(df[df["n"] != holdout_n] if holdout_n and holdout_check else df, n_boot=bootstrap)
        if holdout_n and holdout_check:
            data, tok = _prepare(work, g.base_recipe, None, None)
            client, exp_id = _client()
            from qwenflow.data.pack import pack_corpus

            pack_corpus(data, tok, g.seq_len, work / "packed")
            preds = []
            for p in holdout_points(g, fit_without(df, holdout_n, bootstrap), holdout_n):
                r = run_point(p, data, tok, work, work / "packed", client, exp_id)
                preds.append({"d": p.tokens, "loss": r["val_loss"]})
            table = holdout_table(df, result, holdout_n, pd.DataFrame(preds))
            out.mkdir(parents=True, exist_ok=True)
            write_holdout(table, out)
            for _, row in table.iterrows():
                extra.append((f"held-out N={holdout_n / 1e6:.2f}M D={row['d'] / 1e6:.2f}M",
                              f"LR pred {row['pred_lr']:.3g} vs grid opt {row['grid_lr_opt']:.3g} (x{row['lr_ratio']:.2f}); "
                              f"loss at pred {row['loss_at_pred']:.4f} vs grid best {row['grid_best_loss']:.4f}"))
            console.print(table.to_string(index=False))
        report = write_report(result, df, out, extra)
        mlflow.set_experiment(EXPERIMENT)
        with mlflow.start_run(run_name="scaling-fit", tags={FIT_TAG: "true", "qwenflow.stage": "scaling-fit"}):
            mlflow.log_text(result.to_json(), "fit.json")
            mlflow.log_artifacts(str(report), "report")
            mlflow.log_metrics({"lr_exp_N": result.lr.exps[0], "lr_exp_D": result.lr.exps[1],
                                "batch_exp_N": result.batch.exps[0], "batch_exp_D": result.batch.exps[1],
                                "lr_exp_C": result.lr_c.exps[0], "batch_exp_C": result.batch_c.exps[0],
                                "points": result.n_points})
    t = Table("law", "fit", title=f"scaling laws from {result.n_points} points (report: {report / 'report.html'})")
    for a, b in [*coefficient_rows(result), *extra]:
        t.add_row(a, b)
    console.print(t)


@app.command("predict")
def predict(params: Annotated[str | None, typer.Option(help="Non-embedding parameters, e.g. 7B")] = None,
            tokens: Annotated[str, typer.Option(help="Training tokens, e.g. 18T")] = "1T",
            recipe: Annotated[str | None, typer.Option("--recipe", "-r", help="Take N from this recipe's model")] = None,
            seq_len: Annotated[int, typer.Option(help="Sequence length to express the batch in sequences")] = 4096):
    """Predicted optimal learning rate and batch size (90% intervals) from the latest fit in MLflow."""
    from qwenflow.scaling.resolve import latest_fit

    if recipe:
        from qwenflow.models import model_size
        from qwenflow.recipe import load_recipe

        with clean_errors():
            s = model_size(load_recipe(recipe).model)
        n = float(s.active_params - s.embedding_params)
    elif params:
        n = parse_count(params)
    else:
        raise typer.BadParameter("give --params or --recipe")
    d = parse_count(tokens)
    with clean_errors():
        fit, run_id = latest_fit()
    p = fit.predict(n, d)
    t = Table("quantity", "predicted", "90% interval", title=f"N={n:.3g}, D={d:.3g} (fit run {run_id})")
    lo, hi = p["learning_rate_interval"]
    t.add_row("learning rate", f"{p['learning_rate']:.3g}", f"[{lo:.3g}, {hi:.3g}]")
    lo, hi = p["batch_tokens_interval"]
    t.add_row("batch (tokens)", f"{p['batch_tokens']:.4g}", f"[{lo:.4g}, {hi:.4g}]")
    t.add_row(f"batch (sequences of {seq_len})", f"{p['batch_tokens'] / seq_len:.0f}", f"[{lo / seq_len:.0f}, {hi / seq_len:.0f}]")
    t.add_row("loss (L(N, D))", f"{p['loss']:.3f}", "")
    console.print(t)
    if max(n / max(c["n"] for c in fit.cells), d / max(c["d"] for c in fit.cells)) > 100:
        console.print("[yellow]note:[/] this extrapolates more than 100x beyond the sweep's largest N or D; "
                      "the intervals cover fit noise, not the extrapolation itself.")
