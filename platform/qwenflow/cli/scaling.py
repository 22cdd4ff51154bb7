"""`qwenflow scaling sweep|fit|predict`: hyperparameter scaling laws from the platform's own sweeps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qwenflow.recipe import load_recipe

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

    recipe = load_recipe(base_recipe)
    if data is None:
        # lazy: imports pandas, pyarrow, sklearn (seconds to import)
        from qwenflow.data.prepare import prepare_data

        data = work / "data"
        if not (data / "corpus" / "train.parquet").is_file():
            prepare_data(recipe, data)
    if tokenizer is None:
        # lazy: kept out of `qwenflow --help` start-up (10 ms)
        from qwenflow.tokenizer.build import build_tokenizer, iter_parquet_texts

        tokenizer = work / "tokenizer"
        if not (tokenizer / "tokenizer.json").is_file():
            build_tokenizer(recipe, tokenizer, iter_parquet_texts([data / "corpus" / "train.parquet"]))
    return data, tokenizer


@app.command("sweep")
def sweep(
    grid: Annotated[str, typer.Option(help="Shipped grid name or a grid YAML file")] = "tiny",
    work: Annotated[Path, typer.Option(help="Working directory (packed data, per-point runs)")] = Path("runs/scaling"),
    data: Annotated[Path | None, typer.Option(help="Prepared data dir (default: prepare into WORK/data)")] = None,
    tokenizer: Annotated[Path | None, typer.Option(help="Tokenizer dir (default: build into WORK/tokenizer)")] = None,
    model: Annotated[list[str] | None, typer.Option(help="Only these ladder models")] = None,
):
    """Run the grid's short pre-training runs; finished points (found in MLflow) are reused."""
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.scaling.grid import load_grid
    from qwenflow.scaling.sweep import run_sweep

    with clean_errors():
        g = load_grid(grid)
        data, tokenizer = _prepare(work, g.base_recipe, data, tokenizer)
        res = run_sweep(g, data, tokenizer, work, models=model)
    ran = [r for r in res if not r["reused"]]
    hours = sum(r["wall_s"] for r in ran) / 3600
    console.print(
        f"{len(res)} points ({len(res) - len(ran)} reused, {len(ran)} run in {hours * 60:.1f} min"
        + (f", {len(ran) / hours:.0f} points/hour" if ran else "")
        + ")"
    )


@app.command("fit")
def fit(
    out: Annotated[Path, typer.Option(help="Report directory (HTML + PNG + fit.json)")] = Path("runs/scaling/report"),
    sweep_name: Annotated[str | None, typer.Option("--sweep", help="Only points of this sweep (default: all)")] = None,
    grid: Annotated[str, typer.Option(help="Grid (names the held-out model)")] = "tiny",
    holdout_check: Annotated[bool, typer.Option(help="Train the held-out size at its predicted settings")] = True,
    work: Annotated[Path, typer.Option(help="Working directory of the sweep")] = Path("runs/scaling"),
    data: Annotated[Path | None, typer.Option(help="Prepared data dir (default: WORK/data)")] = None,
    tokenizer: Annotated[Path | None, typer.Option(help="Tokenizer dir (default: WORK/tokenizer)")] = None,
    holdout_train: Annotated[
        bool,
        typer.Option(help="Train the held-out model at its prediction (off: compare with the nearest grid point only)"),
    ] = True,
    holdout_tokens: Annotated[
        list[int] | None,
        typer.Option(help="Train the held-out model at its prediction only for these data sizes (default: every one)"),
    ] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples")] = 500,
):
    """Fit LR/batch/loss laws from the sweep runs in MLflow; log the fit and its report to MLflow."""
    # lazy: imports torch, mlflow, transformers (seconds to import)
    import mlflow
    import pandas as pd

    from qwenflow.scaling.fit import EXPERIMENT, FIT_TAG, collect_points, fit_scaling
    from qwenflow.scaling.grid import load_grid
    from qwenflow.scaling.holdout import fit_without, holdout_model, holdout_points, holdout_table, write_holdout
    from qwenflow.scaling.report import coefficient_rows, deepseek_rows, write_report
    from qwenflow.scaling.sweep import _client, run_or_reuse
    from qwenflow.tracking import connect

    with clean_errors():
        connect()
        df = collect_points(EXPERIMENT, sweep_name)
        if df.empty:
            raise ValueError("no finished sweep points in MLflow: run `qwenflow scaling sweep` first")
        g = load_grid(grid)
        result = fit_scaling(df, n_boot=bootstrap)  # every size: the fit `learning_rate: auto` resolves from
        extra, table = [], None
        if holdout_check and g.holdout:
            model, holdout_n = holdout_model(g, df)
            held = fit_without(df, holdout_n, bootstrap)
            preds = []
            to_train = holdout_points(g, held, model, holdout_n, holdout_tokens) if holdout_train else []
            if to_train:
                # lazy: imports numpy (192 ms)
                from qwenflow.data.pack import pack_corpus

                data, tok = _prepare(work, g.base_recipe, data, tokenizer)
                client, exp_id = _client()
                pack_corpus(data, tok, g.seq_len, work / "packed")
                for p in to_train:
                    r = run_or_reuse(p, data, tok, work, work / "packed", client, exp_id)
                    preds.append(
                        {"d": p.tokens, "lr": p.learning_rate, "batch": p.batch_size * p.seq_len, "loss": r["val_loss"]}
                    )
            table = holdout_table(df, held, holdout_n, pd.DataFrame(preds, columns=["d", "lr", "batch", "loss"]))
            out.mkdir(parents=True, exist_ok=True)
            write_holdout(table, out)
            extra.append(
                (f"held-out fit ({model.name} left out)", "; ".join(f"{k}: {t}" for k, t in coefficient_rows(held)[:2]))
            )
            for _, row in table.iterrows():
                extra.append(
                    (
                        f"held-out {model.name} N={holdout_n / 1e6:.2f}M D={row['d'] / 1e6:.3f}M",
                        f"LR pred {row['pred_lr']:.3g} [{row['pred_lr_lo']:.3g}, {row['pred_lr_hi']:.3g}] "
                        f"(law in {row['pred_lr_law']}) vs grid opt {row['grid_lr_opt']:.3g} ({row['grid_lr_edge']}), "
                        f"x{row['lr_ratio']:.2f}; "
                        f"grid opt B {row['grid_batch_opt']:.0f} tok ({row['grid_batch_edge']}); "
                        + (
                            f"trained at lr {row['trained_lr']:.3g} B {row['trained_batch']:.0f} tok: loss "
                            f"{row['loss_at_pred']:.4f} vs grid best {row['grid_best_loss']:.4f} "
                            f"(gap {row['loss_gap']:+.4f}); "
                            if row["loss_at_pred"] == row["loss_at_pred"]
                            else "not trained at the prediction; "
                        )
                        + f"nearest grid point (lr {row['nearest_grid_lr']:.3g}, B {row['nearest_grid_batch']:.0f}) "
                        f"loss {row['loss_at_nearest_grid']:.4f} (gap {row['nearest_grid_gap']:+.4f}); "
                        f"loss law predicted {row['pred_loss_law']:.4f}",
                    )
                )
            console.print(table.to_string(index=False))
        report = write_report(result, df, out, extra)
        mlflow.set_experiment(EXPERIMENT)
        with mlflow.start_run(run_name="scaling-fit", tags={FIT_TAG: "true", "qwenflow.stage": "scaling-fit"}):
            mlflow.log_text(result.to_json(), "fit.json")
            mlflow.log_artifacts(str(report), "report")
            metrics = {
                "points": result.n_points,
                "loss_E": result.loss.E,
                "loss_alpha": result.loss.alpha,
                "loss_beta": result.loss.beta,
                "loss_law_well_defined": float(result.loss.well_defined),
            }
            for name, law in (
                ("lr", result.lr),
                ("batch", result.batch),
                ("lr_c", result.lr_c),
                ("batch_c", result.batch_c),
            ):
                if law is not None:
                    metrics.update({f"{name}_exp_{v}": e for v, e in zip(law.variables, law.exps)})
                    metrics[f"{name}_reliable"] = float(law.reliable)
            if table is not None:
                for _, row in table.iterrows():
                    tag = f"d{int(row['d'])}"
                    metrics.update(
                        {
                            f"holdout_lr_ratio_{tag}": row["lr_ratio"],
                            f"holdout_loss_at_pred_{tag}": row["loss_at_pred"],
                            f"holdout_grid_best_loss_{tag}": row["grid_best_loss"],
                            f"holdout_loss_at_nearest_grid_{tag}": row["loss_at_nearest_grid"],
                        }
                    )
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
    t = Table("law", "fit", title=f"scaling laws from {result.n_points} points (report: {report / 'report.html'})")
    for a, b in [*coefficient_rows(result), *extra, *deepseek_rows(result)[:2]]:
        t.add_row(a, b)
    console.print(t)


@app.command("predict")
def predict(
    params: Annotated[str | None, typer.Option(help="Non-embedding parameters, e.g. 7B")] = None,
    tokens: Annotated[str, typer.Option(help="Training tokens, e.g. 18T")] = "1T",
    recipe: Annotated[str | None, typer.Option("--recipe", "-r", help="Take N from this recipe's model")] = None,
    seq_len: Annotated[int, typer.Option(help="Sequence length to express the batch in sequences")] = 4096,
):
    """Predicted optimal learning rate and batch size (90% intervals) from the latest fit in MLflow."""
    # lazy: imports pandas, pyarrow, scipy (seconds to import)
    from qwenflow.scaling.resolve import latest_fit

    if recipe:
        # lazy: imports torch, transformers, accelerate (seconds to import)
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
    if p["learning_rate"] is None and p["batch_tokens"] is None:
        console.print(f"[red]error:[/] the fit cannot predict: {p['notes']}")
        raise typer.Exit(1)
    t = Table("quantity", "predicted", "90% interval", "law", title=f"N={n:.3g}, D={d:.3g} (fit run {run_id})")
    if p["learning_rate"] is not None:
        lo, hi = p["learning_rate_interval"]
        t.add_row("learning rate", f"{p['learning_rate']:.3g}", f"[{lo:.3g}, {hi:.3g}]", p["learning_rate_law"])
    if p["batch_tokens"] is not None:
        lo, hi = p["batch_tokens_interval"]
        t.add_row("batch (tokens)", f"{p['batch_tokens']:.4g}", f"[{lo:.4g}, {hi:.4g}]", p["batch_tokens_law"])
        t.add_row(
            f"batch (sequences of {seq_len})",
            f"{p['batch_tokens'] / seq_len:.0f}",
            f"[{lo / seq_len:.0f}, {hi / seq_len:.0f}]",
            p["batch_tokens_law"],
        )
    t.add_row("loss (L(N, D))", f"{p['loss']:.3f}", "", "degenerate" if fit.loss.note else "N,D")
    console.print(t)
    if max(n / max(c["n"] for c in fit.cells), d / max(c["d"] for c in fit.cells)) > 100:
        console.print(
            "[yellow]note:[/] this extrapolates more than 100x beyond the sweep's largest N or D; "
            "the intervals cover fit noise, not the extrapolation itself."
        )
    for what, note in p["notes"].items():
        console.print(f"[yellow]note ({what}):[/] {note}")
