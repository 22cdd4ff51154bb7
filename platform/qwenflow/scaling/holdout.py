"""The honest check: fit without the held-out (largest dense) size, train it at the predicted settings, and
compare with the best point of its own grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .fit import HOLDOUT_SUFFIX, ScalingFit, fit_scaling, optimal_cells
from .grid import Grid, LadderModel, Point


def holdout_model(grid: Grid, df: pd.DataFrame) -> tuple[LadderModel, float]:
    """The grid's held-out model and its N as tracked in MLflow (it must have grid points to compare against)."""
    if not grid.holdout:
        raise ValueError(f"grid {grid.name!r} names no holdout model: add `holdout: <model name>` to the grid file")
    model = next((m for m in grid.models if m.name == grid.holdout), None)
    if model is None:
        raise ValueError(
            f"grid {grid.name!r}: holdout {grid.holdout!r} is not one of its models {[m.name for m in grid.models]}"
        )
    sizes = df[(df["model"] == model.name) & (df["arch"] == "dense")]["n"].unique()
    if len(sizes) != 1:
        raise ValueError(
            f"held-out model {model.name!r} has no finished grid points in MLflow: run "
            f"`qwenflow scaling sweep --model {model.name}` first"
        )
    return model, float(sizes[0])


def fitted_batch_fallback(fit: ScalingFit) -> float:
    """Batch to use when the batch law is undefined: the median optimum of the sizes the fit saw."""
    cells = [c for c in fit.cells if c["arch"] == "dense" and c["n"] in fit.fitted_n]
    return float(np.median([c["batch_opt"] for c in cells]))


def holdout_points(
    grid: Grid, fit: ScalingFit, model: LadderModel, n_holdout: float, tokens: list[int] | None = None
) -> list[Point]:
    """One point per data size (or per `tokens`) for the held-out model, at the LR and batch predicted without it."""
    pts = []
    for d in tokens or model.data_tokens or grid.data_tokens:
        pred = fit.predict(n_holdout, d)
        if pred["learning_rate"] is None:
            raise ValueError(f"no learning-rate law to predict from: {pred['notes']['learning_rate']}")
        batch_tokens = pred["batch_tokens"] or fitted_batch_fallback(fit)
        pts.append(
            Point(
                model=model,
                tokens=d,
                learning_rate=float(f"{pred['learning_rate']:.3g}"),
                batch_size=max(1, round(batch_tokens / grid.seq_len)),
                seq_len=grid.seq_len,
                base_recipe=grid.base_recipe,
                grid=f"{grid.name}{HOLDOUT_SUFFIX}",
            )
        )
    return pts


def holdout_table(df: pd.DataFrame, fit: ScalingFit, n_holdout: float, predicted: pd.DataFrame) -> pd.DataFrame:
    """Per data size: the held-out model's grid optimum vs the prediction made without it, and the losses.

    `predicted` has one row per data size: d, lr, batch (tokens) actually trained, loss reached."""
    own = df[(df["n"] == n_holdout) & (df["arch"] == "dense")]
    cells = optimal_cells(own)
    rows = []
    for _, c in cells.iterrows():
        p = predicted[predicted["d"] == c["d"]] if len(predicted) else predicted
        pred = fit.predict(n_holdout, c["d"])
        batch = pred["batch_tokens"] or fitted_batch_fallback(fit)
        grid = own[own["d"] == c["d"]]
        # The grid point nearest the prediction (log distance): a check that needs no extra training.
        near = grid.loc[(np.log(grid["lr"] / pred["learning_rate"]) ** 2 + np.log(grid["batch"] / batch) ** 2).idxmin()]
        lr_c = fit.lr_c.predict(6 * n_holdout * c["d"]) if fit.lr_c else float("nan")
        rows.append(
            {
                "d": c["d"],
                "grid_lr_opt": c["lr_opt"],
                "grid_lr_edge": c["lr_edge"] or "bracketed",
                "pred_lr": pred["learning_rate"],
                "pred_lr_law": pred["learning_rate_law"],
                "pred_lr_lo": pred["learning_rate_interval"][0],
                "pred_lr_hi": pred["learning_rate_interval"][1],
                "lr_ratio": pred["learning_rate"] / c["lr_opt"],
                "pred_lr_from_C": lr_c,
                "grid_batch_opt": c["batch_opt"],
                "grid_batch_edge": c["batch_edge"] or "bracketed",
                "pred_batch": pred["batch_tokens"] if pred["batch_tokens"] is not None else float("nan"),
                "trained_lr": float(p["lr"].iloc[0]) if len(p) else float("nan"),
                "trained_batch": float(p["batch"].iloc[0]) if len(p) else float("nan"),
                "grid_best_loss": c["loss"],
                "grid_best_lr": c["best_lr"],
                "grid_best_batch": c["best_batch"],
                "loss_at_pred": float(p["loss"].min()) if len(p) else float("nan"),
                "nearest_grid_lr": float(near["lr"]),
                "nearest_grid_batch": float(near["batch"]),
                "loss_at_nearest_grid": float(near["loss"]),
                "pred_loss_law": pred["loss"],
            }
        )
    t = pd.DataFrame(rows)
    if len(t):
        t["loss_gap"] = t["loss_at_pred"] - t["grid_best_loss"]
        t["nearest_grid_gap"] = t["loss_at_nearest_grid"] - t["grid_best_loss"]
    return t


def fit_without(df: pd.DataFrame, n_holdout: float, n_boot: int = 500) -> ScalingFit:
    return fit_scaling(df, n_boot=n_boot, exclude_n=[n_holdout])


def write_holdout(table: pd.DataFrame, out_dir: str | Path) -> Path:
    path = Path(out_dir) / "holdout.csv"
    table.to_csv(path, index=False)
    return path
