"""Fit hyperparameter scaling laws from sweep runs tracked in MLflow (not files: runs from any machine count)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .laws import LossLaw, PowerLaw, dense_equivalent_params, fit_loss_law, fit_power_law

EXPERIMENT = "qwenflow-scaling"
POINT_TAG = "qwenflow.scaling.point"
FIT_TAG = "qwenflow.scaling.fit"


def collect_points(experiment: str = EXPERIMENT, sweep: str | None = None) -> pd.DataFrame:
    """One row per finished sweep point: arch, n (active non-embedding params), d (tokens), lr, batch (tokens), loss."""
    import mlflow

    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        return pd.DataFrame(columns=["arch", "n", "d", "lr", "batch", "loss", "run_id"])
    filt = f"tags.`{POINT_TAG}` != '' and attributes.status = 'FINISHED'"
    if sweep:
        filt += f" and tags.`qwenflow.scaling.sweep` = '{sweep}'"
    runs = mlflow.search_runs([exp.experiment_id], filter_string=filt, max_results=10000)
    if runs.empty:
        return pd.DataFrame(columns=["arch", "n", "d", "lr", "batch", "loss", "run_id"])
    df = pd.DataFrame({
        "arch": runs["params.arch"], "n": runs["params.n_params"].astype(float),
        "d": runs["params.tokens"].astype(float), "lr": runs["params.learning_rate"].astype(float),
        "batch": runs["params.batch_tokens"].astype(float), "loss": runs["metrics.val_loss"].astype(float),
        "run_id": runs["run_id"], "point": runs[f"tags.{POINT_TAG}"],
    })
    df = df[np.isfinite(df["loss"])]
    # The same point run twice (another machine, an earlier sweep): keep the newest.
    return df.drop_duplicates("point", keep="first").reset_index(drop=True)


def _interior_min(x: np.ndarray, y: np.ndarray) -> float:
    """Minimiser of a parabola through the best point and its neighbours in log x; falls back to the argmin."""
    order = np.argsort(x)
    x, y = np.log(x[order]), y[order]
    i = int(np.argmin(y))
    if 0 < i < len(x) - 1:
        a, b, _ = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)
        if a > 0:
            return float(np.exp(np.clip(-b / (2 * a), x[i - 1], x[i + 1])))
    return float(np.exp(x[i]))


def optimal_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Per (arch, n, d): the optimal learning rate and batch size, and the best loss."""
    rows = []
    for (arch, n, d), cell in df.groupby(["arch", "n", "d"]):
        best = cell.loc[cell["loss"].idxmin()]
        at_b = cell[cell["batch"] == best["batch"]].groupby("lr")["loss"].min()
        at_lr = cell[cell["lr"] == best["lr"]].groupby("batch")["loss"].min()
        rows.append({
            "arch": arch, "n": n, "d": d, "loss": float(best["loss"]),
            "lr_opt": _interior_min(at_b.index.to_numpy(float), at_b.to_numpy()) if len(at_b) > 1 else float(best["lr"]),
            "batch_opt": _interior_min(at_lr.index.to_numpy(float), at_lr.to_numpy()) if len(at_lr) > 1 else float(best["batch"]),
            "points": len(cell),
        })
    return pd.DataFrame(rows)


@dataclass
class ScalingFit:
    lr: PowerLaw                 # lr_opt(N, D)
    batch: PowerLaw              # batch_opt(N, D), tokens per step
    lr_c: PowerLaw               # lr_opt(C), C = 6 N D
    batch_c: PowerLaw            # batch_opt(C)
    loss: LossLaw                # L(N, D), dense
    moe_equivalent: list[dict] = field(default_factory=list)  # per MoE cell: active N, D, dense-equivalent N
    cells: list[dict] = field(default_factory=list)
    n_points: int = 0

    def predict(self, n: float, d: float) -> dict:
        lr_lo, lr_hi = self.lr.interval(n, d)
        b_lo, b_hi = self.batch.interval(n, d)
        return {"learning_rate": self.lr.predict(n, d), "learning_rate_interval": [lr_lo, lr_hi],
                "batch_tokens": self.batch.predict(n, d), "batch_tokens_interval": [b_lo, b_hi],
                "loss": self.loss.predict(n, d)}

    def to_json(self) -> str:
        return json.dumps({"lr": self.lr.to_dict(), "batch": self.batch.to_dict(), "lr_c": self.lr_c.to_dict(),
                           "batch_c": self.batch_c.to_dict(), "loss": self.loss.to_dict(),
                           "moe_equivalent": self.moe_equivalent, "cells": self.cells, "n_points": self.n_points},
                          indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ScalingFit":
        d = json.loads(text)
        return cls(PowerLaw.from_dict(d["lr"]), PowerLaw.from_dict(d["batch"]), PowerLaw.from_dict(d["lr_c"]),
                   PowerLaw.from_dict(d["batch_c"]), LossLaw(**d["loss"]), d.get("moe_equivalent", []),
                   d.get("cells", []), d.get("n_points", 0))


def fit_scaling(df: pd.DataFrame, n_boot: int = 500, exclude_n: list[float] | None = None) -> ScalingFit:
    """Fit the laws on dense cells (optionally holding some sizes out); MoE cells get dense-equivalent sizes."""
    cells = optimal_cells(df)
    dense = cells[cells["arch"] == "dense"]
    if exclude_n:
        dense = dense[~dense["n"].isin(exclude_n)]
    if dense["n"].nunique() < 2 or dense["d"].nunique() < 2:
        raise ValueError(f"need dense runs at >= 2 model sizes and >= 2 data sizes to fit, got sizes "
                         f"{sorted(dense['n'].unique())} and data sizes {sorted(dense['d'].unique())}")
    nd = {"N": dense["n"].to_numpy(), "D": dense["d"].to_numpy()}
    c = {"C": 6 * dense["n"].to_numpy() * dense["d"].to_numpy()}
    fit = ScalingFit(
        lr=fit_power_law(nd, dense["lr_opt"].to_numpy(), n_boot),
        batch=fit_power_law(nd, dense["batch_opt"].to_numpy(), n_boot),
        lr_c=fit_power_law(c, dense["lr_opt"].to_numpy(), n_boot),
        batch_c=fit_power_law(c, dense["batch_opt"].to_numpy(), n_boot),
        loss=fit_loss_law(dense["n"].to_numpy(), dense["d"].to_numpy(), dense["loss"].to_numpy()),
        cells=cells.to_dict("records"), n_points=int(len(df)),
    )
    for _, row in cells[cells["arch"] == "moe"].iterrows():
        fit.moe_equivalent.append({"active_n": row["n"], "d": row["d"], "loss": row["loss"],
                                   "dense_equivalent_n": dense_equivalent_params(fit.loss, row["loss"], row["d"])})
    return fit
