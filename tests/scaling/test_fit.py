"""Scaling-law fits recover known laws from synthetic sweeps, and `auto` resolves from a fit tracked in MLflow."""
from __future__ import annotations

import itertools

import mlflow
import numpy as np
import pandas as pd
import pytest

from qwenflow.recipe import load_recipe
from qwenflow.scaling.fit import FIT_TAG, fit_scaling, optimal_cells
from qwenflow.scaling.laws import LossLaw, dense_equivalent_params, fit_loss_law, fit_power_law
from qwenflow.scaling.resolve import NoScalingFit, resolve_auto

TRUE_LR = (0.8, -0.25, 0.05)        # lr* = 0.8 N^-0.25 D^0.05
TRUE_B = (2.0, 0.1, 0.3)            # B* = 2 N^0.1 D^0.3 (tokens)
TRUE_LOSS = LossLaw(E=1.5, A=50.0, alpha=0.3, B=200.0, beta=0.35)


def synthetic_sweep(noise=0.0, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for n, d in itertools.product([1e5, 3e5, 1e6, 3e6], [3e5, 1e6, 3e6]):
        lr_opt = TRUE_LR[0] * n ** TRUE_LR[1] * d ** TRUE_LR[2]
        b_opt = TRUE_B[0] * n ** TRUE_B[1] * d ** TRUE_B[2]
        for k_lr, k_b in itertools.product([-1, 0, 1], [-1, 0, 1]):
            lr, b = lr_opt * 2.0 ** (k_lr + 0.3), b_opt * 2.0 ** (k_b - 0.2)
            loss = TRUE_LOSS.predict(n, d) + 0.05 * np.log(lr / lr_opt) ** 2 + 0.02 * np.log(b / b_opt) ** 2
            rows.append({"arch": "dense", "n": n, "d": d, "lr": lr, "batch": b,
                         "loss": loss + noise * rng.normal(), "run_id": "x", "point": f"{n}-{d}-{lr}-{b}"})
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


def test_full_fit_recovers_laws_and_moe_equivalent():
    df = synthetic_sweep(noise=0.002)
    moe = df[df["n"] == 3e5].copy()
    moe["arch"], moe["loss"] = "moe", moe["loss"] - 0.1   # an MoE with 3e5 active params beats that dense size
    fit = fit_scaling(pd.concat([df, moe]), n_boot=100)
    assert fit.lr.exps == pytest.approx([TRUE_LR[1], TRUE_LR[2]], abs=0.05)
    assert fit.batch.exps == pytest.approx([TRUE_B[1], TRUE_B[2]], abs=0.05)
    assert fit.loss.predict(1e6, 1e6) == pytest.approx(TRUE_LOSS.predict(1e6, 1e6), rel=0.02)
    assert all(m["dense_equivalent_n"] > m["active_n"] for m in fit.moe_equivalent)
    # Holding the largest size out still predicts its optimal learning rate closely.
    held = fit_scaling(df, n_boot=50, exclude_n=[3e6])
    true = TRUE_LR[0] * 3e6 ** TRUE_LR[1] * 1e6 ** TRUE_LR[2]
    assert held.lr.predict(3e6, 1e6) == pytest.approx(true, rel=0.1)


def test_loss_law_and_dense_equivalent_inverse():
    n, d = np.meshgrid([1e5, 3e5, 1e6, 3e6, 1e7], [3e5, 1e6, 3e6, 1e7])
    law = fit_loss_law(n.ravel(), d.ravel(), TRUE_LOSS.predict(n.ravel(), d.ravel()))
    assert law.predict(2e6, 2e6) == pytest.approx(TRUE_LOSS.predict(2e6, 2e6), rel=0.01)
    assert dense_equivalent_params(TRUE_LOSS, TRUE_LOSS.predict(5e5, 1e6), 1e6) == pytest.approx(5e5, rel=1e-6)


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
