"""The honest check: fit without the largest size, train it at the predicted settings, compare with its grid best."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .fit import ScalingFit, fit_scaling, optimal_cells
from .grid import Grid, Point


def _nearest(values: list[int], target: float) -> int:
    return min(values, key=lambda v: abs(v - target))


def holdout_points(grid: Grid, fit: ScalingFit, n_holdout: float) -> list[Point]:
    """One point per data size for the held-out model, at the fitted learning rate and batch size."""
    model = next(m for m in grid.models if m.name == grid.holdout)
    pts = []
    for d in model.data_tokens or grid.data_tokens:
        pred = fit.predict(n_holdout, d)
        batch = max(1, round(pred["batch_tokens"] / grid.seq_len))
        pts.append(Point(model=model, tokens=d, learning_rate=float(f"{pred['learning_rate']:.3g}"), batch_size=batch,
                         seq_len=grid.seq_len, base_recipe=grid.base_recipe, grid=f"{grid.name}-holdout"))
    return pts


def holdout_table(df: pd.DataFrame, fit: ScalingFit, n_holdout: float, predicted: pd.DataFrame) -> pd.DataFrame:
    """Per data size: grid-optimal vs predicted LR/B and the losses they reached."""
    cells = optimal_cells(df[(df["n"] == n_holdout) & (df["arch"] == "dense")])
    rows = []
    for _, c in cells.iterrows():
        p = predicted[predicted["d"] == c["d"]]
        pred = fit.predict(n_holdout, c["d"])
        rows.append({"d": c["d"], "grid_lr_opt": c["lr_opt"], "pred_lr": pred["learning_rate"],
                     "lr_ratio": pred["learning_rate"] / c["lr_opt"], "grid_batch_opt": c["batch_opt"],
                     "pred_batch": pred["batch_tokens"], "grid_best_loss": c["loss"],
                     "loss_at_pred": float(p["loss"].min()) if len(p) else float("nan"),
                     "pred_loss_law": pred["loss"]})
    return pd.DataFrame(rows)


def fit_without(df: pd.DataFrame, n_holdout: float, n_boot: int = 500) -> ScalingFit:
    return fit_scaling(df, n_boot=n_boot, exclude_n=[n_holdout])


def write_holdout(table: pd.DataFrame, out_dir: str | Path) -> Path:
    path = Path(out_dir) / "holdout.csv"
    table.to_csv(path, index=False)
    return path
