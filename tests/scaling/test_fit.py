"""Scaling-law fits recover known laws from synthetic sweeps, and `auto` resolves from a fit tracked in MLflow."""

from __future__ import annotations

import itertools

import mlflow
import numpy as np
import pandas as pd
import pytest

from qwenflow.recipe import load_recipe
from qwenflow.scaling.fit import FIT_TAG, fit_scaling, optimal_cells, parabola_optimum
from qwenflow.scaling.grid import Grid
from qwenflow.scaling.holdout import fit_without, holdout_model, holdout_table
from qwenflow.scaling.laws import EXP_BOUNDS, LossLaw, dense_equivalent_params, fit_loss_law, fit_power_law
from qwenflow.scaling.resolve import NoScalingFit, resolve_auto

TRUE_LR = (0.8, -0.25, 0.05)  # lr* = 0.8 N^-0.25 D^0.05
TRUE_B = (2.0, 0.1, 0.3)  # B* = 2 N^0.1 D^0.3 (tokens)
TRUE_LOSS = LossLaw(E=1.5, A=50.0, alpha=0.3, B=200.0, beta=0.35)


def synthetic_sweep(noise=0.0, seed=0, lr_shift=lambda n, d: 0.0) -> pd.DataFrame:
    """A sweep around the known optima; lr_shift(n, d) moves a cell's LR grid by that many octaves."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, d in itertools.product([1e5, 3e5, 1e6, 3e6], [3e5, 1e6, 3e6]):
        lr_opt = TRUE_LR[0] * n ** TRUE_LR[1] * d ** TRUE_LR[2]
        b_opt = TRUE_B[0] * n ** TRUE_B[1] * d ** TRUE_B[2]
        for k_lr, k_b in itertools.product([-1, 0, 1], [-1, 0, 1]):
            lr, b = lr_opt * 2.0 ** (k_lr + 0.3 + lr_shift(n, d)), b_opt * 2.0 ** (k_b - 0.2)
            loss = TRUE_LOSS.predict(n, d) + 0.05 * np.log(lr / lr_opt) ** 2 + 0.02 * np.log(b / b_opt) ** 2
            rows.append(
                {
                    "arch": "dense",
                    "n": n,
                    "d": d,
                    "lr": lr,
                    "batch": b,
                    "loss": loss + noise * rng.normal(),
                    "run_id": "x",
                    "point": f"{n}-{d}-{lr}-{b}",
                }
            )
    return pd.DataFrame(rows)


def test_power_law_recovers_exponents_and_brackets_them():
    rng = np.random.default_rng(1)
    n, d = rng.uniform(1e5, 1e7, 40), rng.uniform(1e6, 1e8, 40)
    y = 0.8 * n**-0.25 * d**0.05 * np.exp(rng.normal(0, 0.05, 40))
    law = fit_power_law({"N": n, "D": d}, y, n_boot=300)
    assert law.exps[0] == pytest.approx(-0.25, abs=0.05) and law.exps[1] == pytest.approx(0.05, abs=0.05)
    lo, hi = law.exponent_interval(0, level=0.99)
    assert lo < -0.25 < hi and hi - lo < 0.2
    assert law.r2 > 0.9


def test_sweep_optimum_is_found_between_grid_points():
    cells = optimal_cells(synthetic_sweep())
    for _, c in cells.iterrows():
        true = TRUE_LR[0] * c["n"] ** TRUE_LR[1] * c["d"] ** TRUE_LR[2]
        assert c["lr_opt"] == pytest.approx(true, rel=0.05)  # the parabola finds the off-grid optimum
        assert c["lr_opt"] != pytest.approx(c["best_lr"], rel=0.05)  # ... which is not the best grid point
        assert c["lr_edge"] == "" and c["batch_edge"] == ""


def test_optimum_at_grid_edge_is_flagged_not_reported_as_optimum():
    lrs = np.array([1e-3, 3e-3, 1e-2])
    assert parabola_optimum(lrs, np.array([5.0, 4.8, 4.7])) == (1e-2, "high")
    assert parabola_optimum(lrs, np.array([4.6, 4.8, 4.9])) == (1e-3, "low")
    assert parabola_optimum(lrs[:1], np.array([4.6])) == (1e-3, "single")
    x, edge = parabola_optimum(lrs, np.array([5.0, 4.7, 4.8]))
    assert edge == "" and 3e-3 < x < 1e-2  # the better neighbour (1e-2) pulls the vertex its way
    assert parabola_optimum(lrs, np.array([5.0, 4.7, 4.7]))[0] == pytest.approx(np.sqrt(3e-3 * 1e-2))


def test_edge_cells_are_left_out_and_the_law_still_recovers_the_exponents():
    # The smallest model's LR grid is 4 octaves too low: its best LR is the largest tried.
    df = synthetic_sweep(noise=0.001, lr_shift=lambda n, d: -4.0 if n == 1e5 else 0.0)
    fit = fit_scaling(df, n_boot=100)
    edge = [c for c in fit.cells if c["lr_edge"]]
    assert {c["n"] for c in edge} == {1e5} and all(c["lr_edge"] == "high" for c in edge)
    assert fit.lr.cells == 9 and fit.lr.reliable and "left out 3 cell(s) at the grid edge" in fit.lr.note
    assert fit.lr.exps == pytest.approx([TRUE_LR[1], TRUE_LR[2]], abs=0.05)
    assert fit.batch.note == "" and fit.batch.cells == 12


def test_too_few_bracketed_cells_make_the_law_indicative_or_undefined():
    df = synthetic_sweep(lr_shift=lambda n, d: -4.0 if n != 3e6 else 0.0)  # only 3 cells bracket the LR
    fit = fit_scaling(df, n_boot=20)
    assert not fit.lr.reliable and "only 3 of 12 cells bracket" in fit.lr.note
    assert fit.lr_c.reliable  # 3 cells are enough for the one-exponent law in C
    pred = fit.predict(1e6, 1e6)
    assert pred["learning_rate_law"] == "C" and "left out 9 cell(s)" in pred["notes"]["learning_rate"]
    keep = [(1e5, 3e5), (1e5, 1e6), (3e5, 3e5)]
    three = fit_scaling(df[[(n, d) in keep for n, d in zip(df["n"], df["d"])]], n_boot=10)
    assert three.lr is None  # 3 cells cannot fit 3 coefficients with a degree of freedom left
    assert not three.lr_c.reliable and three.predict(2e5, 5e5)["learning_rate_law"] == "C"


def test_full_fit_recovers_laws_and_moe_equivalent():
    df = synthetic_sweep(noise=0.002)
    moe = df[df["n"] == 3e5].copy()
    moe["arch"], moe["loss"] = "moe", moe["loss"] - 0.1  # an MoE with 3e5 active params beats that dense size
    fit = fit_scaling(pd.concat([df, moe]), n_boot=100)
    assert fit.lr.exps == pytest.approx([TRUE_LR[1], TRUE_LR[2]], abs=0.05)
    assert fit.batch.exps == pytest.approx([TRUE_B[1], TRUE_B[2]], abs=0.05)
    assert fit.loss.predict(1e6, 1e6) == pytest.approx(TRUE_LOSS.predict(1e6, 1e6), rel=0.02)
    assert fit.loss.well_defined, fit.loss.note
    assert all(m["dense_equivalent_n"] > m["active_n"] for m in fit.moe_equivalent)
    # Holding the largest size out still predicts its optimal learning rate closely.
    held = fit_scaling(df, n_boot=50, exclude_n=[3e6])
    true = TRUE_LR[0] * 3e6 ** TRUE_LR[1] * 1e6 ** TRUE_LR[2]
    assert held.lr.predict(3e6, 1e6) == pytest.approx(true, rel=0.1)


def test_loss_law_recovers_exponents_with_bootstrap_intervals():
    rng = np.random.default_rng(3)
    n, d = (g.ravel() for g in np.meshgrid([1e5, 3e5, 1e6, 3e6, 1e7], [3e5, 1e6, 3e6, 1e7]))
    law = fit_loss_law(n, d, TRUE_LOSS.predict(n, d) + rng.normal(0, 0.003, n.size), n_boot=60)
    assert law.well_defined, law.note
    assert law.alpha == pytest.approx(TRUE_LOSS.alpha, abs=0.05) and law.beta == pytest.approx(TRUE_LOSS.beta, abs=0.05)
    assert law.E == pytest.approx(TRUE_LOSS.E, abs=0.15)
    for name in ("alpha", "beta", "E"):
        lo, hi = law.param_interval(name, level=0.98)
        assert lo - 0.02 <= getattr(TRUE_LOSS, name) <= hi + 0.02, name
    assert dense_equivalent_params(TRUE_LOSS, float(TRUE_LOSS.predict(5e5, 1e6)), 1e6) == pytest.approx(5e5, rel=1e-6)


def test_degenerate_loss_law_is_flagged_and_moe_equivalent_undefined():
    # What tiny CPU sweeps show: at fixed D a bigger model is no better (it is under-trained).
    n, d = (g.ravel() for g in np.meshgrid([5e4, 2e5, 8e5], [6e4, 2e5]))
    loss = 9.0 - 0.45 * np.log10(d / 6e4) + 0.02 * np.log10(n / 5e4)
    law = fit_loss_law(n, d, loss, n_boot=20)
    assert not law.well_defined and "no N dependence" in law.note
    assert law.E >= 0.1 and EXP_BOUNDS[0] <= law.alpha <= EXP_BOUNDS[1]
    with pytest.raises(ValueError, match="not well defined"):
        dense_equivalent_params(law, 8.9, 6e4)
    with pytest.raises(ValueError, match="infinite-size limit"):
        dense_equivalent_params(TRUE_LOSS, TRUE_LOSS.E, 1e6)


def test_holdout_compares_the_held_out_model_with_its_own_grid():
    df = synthetic_sweep(noise=0.001)
    df["model"] = df["n"].map({1e5: "s", 3e5: "m", 1e6: "l", 3e6: "xl"})
    grid = Grid.model_validate(
        {
            "name": "syn",
            "data_tokens": [300000],
            "learning_rates": [1e-3],
            "batch_sizes": [4],
            "holdout": "xl",
            "models": [
                {
                    "name": k,
                    "hidden_size": 32,
                    "num_layers": 1,
                    "num_heads": 2,
                    "num_kv_heads": 1,
                    "intermediate_size": 64,
                }
                for k in ("s", "m", "l", "xl")
            ],
        }
    )
    model, n = holdout_model(grid, df)
    assert model.name == "xl" and n == 3e6
    held = fit_without(df, n, n_boot=50)
    assert 3e6 not in held.fitted_n
    table = holdout_table(df, held, n, pd.DataFrame(columns=["d", "lr", "batch", "loss"]))
    assert list(table["d"]) == [3e5, 1e6, 3e6]
    assert table["lr_ratio"].to_numpy() == pytest.approx(1.0, abs=0.1)  # the law extrapolates one size up
    own = df[df["n"] == 3e6]
    assert set(table["loss_at_nearest_grid"]) <= set(own["loss"]) and (table["nearest_grid_gap"] >= 0).all()
    with pytest.raises(ValueError, match="no finished grid points"):
        holdout_model(grid, df[df["model"] != "xl"])


def test_fit_needs_two_sizes():
    df = synthetic_sweep()
    with pytest.raises(ValueError, match=">= 2 model sizes"):
        fit_scaling(df[df["n"] == 1e5])


def test_auto_resolves_from_latest_fit_in_mlflow(tracking):
    recipe = load_recipe("tiny", ["pretrain.learning_rate=auto", "pretrain.global_batch_size=auto"])
    with pytest.raises(NoScalingFit, match="qwenflow scaling sweep"):
        resolve_auto(recipe)
    fit = fit_scaling(synthetic_sweep(), n_boot=50)
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment("qwenflow-scaling")
    with mlflow.start_run(tags={FIT_TAG: "true"}) as run:
        mlflow.log_text(fit.to_json(), "fit.json")
    resolved, info = resolve_auto(recipe)
    assert info["scaling_fit_run_id"] == run.info.run_id
    p = resolved.pretrain
    assert isinstance(p.learning_rate, float) and isinstance(p.global_batch_size, int)
    assert p.global_batch_size % p.micro_batch_size == 0
    assert p.learning_rate == pytest.approx(fit.lr.predict(info["scaling_n_params"], info["scaling_tokens"]))
    lo, hi = info["predicted_lr_interval"]
    assert lo <= p.learning_rate <= hi
