"""Fit hyperparameter scaling laws from sweep runs tracked in MLflow (not files: runs from any machine count).

A cell is one (arch, N, D). Its optimal LR (or batch) is the vertex of a parabola in log space through the best
grid point and its two neighbours; when the best point is the smallest or largest value tried, the grid does not
bracket the optimum and the cell is flagged "at grid edge" and left out of that law.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .laws import LossLaw, PowerLaw, dense_equivalent_params, fit_loss_law, fit_power_law

EXPERIMENT = "qwenflow-scaling"
POINT_TAG = "qwenflow.scaling.point"
FIT_TAG = "qwenflow.scaling.fit"
SWEEP_TAG = "qwenflow.scaling.sweep"
HOLDOUT_SUFFIX = "-holdout"  # sweep tag of held-out checks: off-grid settings, kept out of the fit
COLUMNS = ["arch", "model", "n", "d", "lr", "batch", "loss", "wall_s", "sweep", "run_id", "point"]


def collect_points(experiment: str = EXPERIMENT, sweep: str | None = None) -> pd.DataFrame:
    """One row per finished sweep point: arch, model, n (active non-embedding params), d (tokens), lr,
    batch (tokens), loss, wall_s. Held-out checks are left out unless `sweep` names them."""
    # lazy: imports mlflow, pyarrow (seconds to import)
    import mlflow

    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        return pd.DataFrame(columns=COLUMNS)
    filt = f"tags.`{POINT_TAG}` != '' and attributes.status = 'FINISHED'"
    if sweep:
        filt += f" and tags.`{SWEEP_TAG}` = '{sweep}'"
    runs = mlflow.search_runs([exp.experiment_id], filter_string=filt, max_results=10000)
    if runs.empty or "metrics.val_loss" not in runs:
        return pd.DataFrame(columns=COLUMNS)

    def col(name, default=np.nan):
        return runs[name] if name in runs else pd.Series(default, index=runs.index)

    df = pd.DataFrame(
        {
            "arch": runs["params.arch"],
            "model": col("params.model", ""),
            "n": runs["params.n_params"].astype(float),
            "d": runs["params.tokens"].astype(float),
            "lr": runs["params.learning_rate"].astype(float),
            "batch": runs["params.batch_tokens"].astype(float),
            "loss": runs["metrics.val_loss"].astype(float),
            "wall_s": col("metrics.wall_s").astype(float),
            "sweep": col(f"tags.{SWEEP_TAG}", ""),
            "run_id": runs["run_id"],
            "point": runs[f"tags.{POINT_TAG}"],
        }
    )
    df = df[np.isfinite(df["loss"])]
    if not sweep:
        df = df[~df["sweep"].fillna("").str.endswith(HOLDOUT_SUFFIX)]
    # The same point run twice (another machine, an earlier sweep): keep the newest.
    return df.drop_duplicates("point", keep="first").reset_index(drop=True)


def parabola_optimum(x: np.ndarray, y: np.ndarray) -> tuple[float, str]:
    """(optimum, edge) along one hyperparameter. edge is '' when the best value has a worse neighbour on both
    sides (the optimum is the vertex of the parabola through the three, in log x), else 'low' / 'high' (the best
    is the smallest / largest value tried: the true optimum may lie beyond it) or 'single' (one value tried)."""
    order = np.argsort(x)
    xs, y = np.asarray(x, float)[order], np.asarray(y, float)[order]
    lx = np.log(xs)
    if len(lx) < 2:
        return float(xs[0]), "single"
    i = int(np.argmin(y))
    if i == 0:
        return float(xs[0]), "low"
    if i == len(lx) - 1:
        return float(xs[-1]), "high"
    a, b, _ = np.polyfit(lx[i - 1 : i + 2], y[i - 1 : i + 2], 2)
    if a <= 0:  # three equal losses: no curvature, the best is as good an answer as any
        return float(xs[i]), ""
    return float(np.exp(np.clip(-b / (2 * a), lx[i - 1], lx[i + 1]))), ""


def optimal_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Per (arch, n, d): the optimal learning rate and batch, whether each sits at the grid edge, and the best loss.

    Both are read along lines through the best grid point: learning rates at its batch, batches at its learning
    rate. (A profile, the best loss at each value over the other hyperparameter, would call a batch bracketed
    when its neighbour was only tried at a poor learning rate.)"""
    rows = []
    for (arch, n, d), cell in df.groupby(["arch", "n", "d"]):
        best = cell.loc[cell["loss"].idxmin()]
        at_b = cell[cell["batch"] == best["batch"]].groupby("lr")["loss"].min()
        at_lr = cell[cell["lr"] == best["lr"]].groupby("batch")["loss"].min()
        lr_opt, lr_edge = parabola_optimum(at_b.index.to_numpy(float), at_b.to_numpy())
        b_opt, b_edge = parabola_optimum(at_lr.index.to_numpy(float), at_lr.to_numpy())
        rows.append(
            {
                "arch": arch,
                "model": best.get("model", ""),
                "n": n,
                "d": d,
                "loss": float(best["loss"]),
                "best_lr": float(best["lr"]),
                "best_batch": float(best["batch"]),
                "lr_opt": lr_opt,
                "lr_edge": lr_edge,
                "batch_opt": b_opt,
                "batch_edge": b_edge,
                "points": len(cell),
            }
        )
    return pd.DataFrame(rows)


def _edge_label(cell) -> str:
    return f"N={cell['n'] / 1e6:.2f}M D={cell['d'] / 1e6:.3f}M"


def fit_optimum_law(cells: pd.DataFrame, key: str, variables: dict[str, str], n_boot: int) -> PowerLaw | None:
    """Power law of the cells' optimal `key` ('lr' or 'batch') in the given variables.

    Fitted on bracketed cells when there are enough for at least one degree of freedom; otherwise on every cell
    and marked unreliable (edge values are bounds, not optima); None when even that is too few."""
    need = len(variables) + 2
    inside = cells[cells[f"{key}_edge"] == ""]
    edge = cells[cells[f"{key}_edge"] != ""]
    use, reliable = (inside, True) if len(inside) >= need else (cells, False)
    if len(use) < need:
        return None
    xs = {
        name: use[column].to_numpy(float) if column != "c" else 6 * use["n"].to_numpy(float) * use["d"].to_numpy(float)
        for name, column in variables.items()
    }
    law = fit_power_law(xs, use[f"{key}_opt"].to_numpy(float), n_boot)
    law.cells, law.reliable = len(use), reliable
    if not reliable:
        law.note = (
            f"only {len(inside)} of {len(cells)} cells bracket the optimum (need {need}): fitted on all, "
            "grid-edge values are bounds, treat the law as indicative"
        )
    elif len(edge):
        law.note = f"left out {len(edge)} cell(s) at the grid edge: " + ", ".join(
            f"{_edge_label(c)} ({c[f'{key}_edge']})" for _, c in edge.iterrows()
        )
    return law


@dataclass
class ScalingFit:
    lr: PowerLaw | None  # lr_opt(N, D)
    batch: PowerLaw | None  # batch_opt(N, D), tokens per step
    lr_c: PowerLaw | None  # lr_opt(C), C = 6 N D
    batch_c: PowerLaw | None  # batch_opt(C)
    loss: LossLaw  # L(N, D), dense
    moe_equivalent: list[dict] = field(default_factory=list)  # per MoE cell: active N, D, dense-equivalent N or reason
    cells: list[dict] = field(default_factory=list)
    n_points: int = 0
    fitted_n: list[float] = field(default_factory=list)  # dense sizes the laws saw (held-out sizes are not here)

    def predict(self, n: float, d: float) -> dict:
        """Predicted optimum at (N, D); a quantity whose law is undefined is None, with the reason in `notes`."""
        out: dict = {"loss": float(self.loss.predict(n, d)), "notes": {}}
        for name, law, law_c in (("learning_rate", self.lr, self.lr_c), ("batch_tokens", self.batch, self.batch_c)):
            # Prefer the (N, D) law; the C law when only it is reliable or exists.
            options = [
                (x, args, label)
                for x, args, label in ((law, (n, d), "N,D"), (law_c, (6 * n * d,), "C"))
                if x is not None
            ]
            if not options:
                out[name], out[f"{name}_interval"], out[f"{name}_law"] = None, None, None
                out["notes"][name] = "too few sweep cells to fit this law"
                continue
            use, args, label = next((o for o in options if o[0].reliable), options[0])
            out[name], out[f"{name}_interval"], out[f"{name}_law"] = (
                use.predict(*args),
                list(use.interval(*args)),
                label,
            )
            if use.note:
                out["notes"][name] = use.note
        return out

    def to_json(self) -> str:
        def law(x):
            return None if x is None else x.to_dict()

        return json.dumps(
            {
                "lr": law(self.lr),
                "batch": law(self.batch),
                "lr_c": law(self.lr_c),
                "batch_c": law(self.batch_c),
                "loss": self.loss.to_dict(),
                "moe_equivalent": self.moe_equivalent,
                "cells": self.cells,
                "n_points": self.n_points,
                "fitted_n": self.fitted_n,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> ScalingFit:
        d = json.loads(text)
        return cls(
            PowerLaw.from_dict(d["lr"]),
            PowerLaw.from_dict(d["batch"]),
            PowerLaw.from_dict(d["lr_c"]),
            PowerLaw.from_dict(d["batch_c"]),
            LossLaw.from_dict(d["loss"]),
            d.get("moe_equivalent", []),
            d.get("cells", []),
            d.get("n_points", 0),
            d.get("fitted_n", []),
        )


def fit_scaling(df: pd.DataFrame, n_boot: int = 500, exclude_n: list[float] | None = None) -> ScalingFit:
    """Fit the laws on dense cells (optionally holding some sizes out); MoE cells get dense-equivalent sizes."""
    cells = optimal_cells(df)
    dense = cells[cells["arch"] == "dense"]
    if exclude_n:
        dense = dense[~dense["n"].isin(exclude_n)]
    if dense["n"].nunique() < 2 or dense["d"].nunique() < 2:
        raise ValueError(
            f"need dense runs at >= 2 model sizes and >= 2 data sizes to fit, got sizes "
            f"{sorted(dense['n'].unique())} and data sizes {sorted(dense['d'].unique())}"
        )
    nd, c = {"N": "n", "D": "d"}, {"C": "c"}
    fit = ScalingFit(
        lr=fit_optimum_law(dense, "lr", nd, n_boot),
        batch=fit_optimum_law(dense, "batch", nd, n_boot),
        lr_c=fit_optimum_law(dense, "lr", c, n_boot),
        batch_c=fit_optimum_law(dense, "batch", c, n_boot),
        loss=fit_loss_law(
            dense["n"].to_numpy(), dense["d"].to_numpy(), dense["loss"].to_numpy(), n_boot=min(n_boot, 200)
        ),
        cells=cells.to_dict("records"),
        n_points=int(len(df)),
        fitted_n=sorted(dense["n"].unique().tolist()),
    )
    for _, row in cells[cells["arch"] == "moe"].iterrows():
        entry = {"active_n": row["n"], "d": row["d"], "loss": row["loss"], "dense_equivalent_n": None, "reason": ""}
        try:
            entry["dense_equivalent_n"] = dense_equivalent_params(fit.loss, row["loss"], row["d"])
        except ValueError as e:
            entry["reason"] = str(e)
        fit.moe_equivalent.append(entry)
    return fit
