"""Power laws for optimal hyperparameters and the loss, fitted in log space with bootstrap intervals.

Hand-written on numpy/scipy: the fits are a few lines of least squares, and no well-kept library fits
hyperparameter scaling laws with the bootstrap we need.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import least_squares


@dataclass
class PowerLaw:
    """y = exp(log_a) * prod(x_i ** exps_i); `boot` holds bootstrap refits for intervals."""

    variables: list[str]
    log_a: float
    exps: list[float]
    boot: list[list[float]] = field(default_factory=list)  # each [log_a, *exps]
    r2: float = float("nan")

    def predict(self, *xs: float) -> float:
        return float(np.exp(self.log_a + sum(e * np.log(x) for e, x in zip(self.exps, xs))))

    def interval(self, *xs: float, level: float = 0.9) -> tuple[float, float]:
        if not self.boot:
            y = self.predict(*xs)
            return y, y
        preds = [np.exp(b[0] + sum(e * np.log(x) for e, x in zip(b[1:], xs))) for b in self.boot]
        lo, hi = np.quantile(preds, [(1 - level) / 2, (1 + level) / 2])
        return float(lo), float(hi)

    def exponent_interval(self, i: int, level: float = 0.9) -> tuple[float, float]:
        if not self.boot:
            return self.exps[i], self.exps[i]
        vals = [b[1 + i] for b in self.boot]
        lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
        return float(lo), float(hi)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PowerLaw":
        return cls(**d)


def _lstsq(logx: np.ndarray, logy: np.ndarray) -> np.ndarray:
    design = np.column_stack([np.ones(len(logy)), logx])
    coef, *_ = np.linalg.lstsq(design, logy, rcond=None)
    return coef


def fit_power_law(xs: dict[str, np.ndarray], y: np.ndarray, n_boot: int = 500, seed: int = 0) -> PowerLaw:
    """Least squares of log y on log x_i; bootstrap by resampling observations with replacement."""
    names = list(xs)
    logx = np.column_stack([np.log(np.asarray(xs[n], float)) for n in names])
    logy = np.log(np.asarray(y, float))
    if len(logy) < len(names) + 1:
        raise ValueError(f"need at least {len(names) + 1} points to fit {names}, got {len(logy)}")
    coef = _lstsq(logx, logy)
    resid = logy - np.column_stack([np.ones(len(logy)), logx]) @ coef
    ss_tot = float(np.sum((logy - logy.mean()) ** 2))
    r2 = 1 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(logy), len(logy))
        if np.linalg.matrix_rank(np.column_stack([np.ones(len(idx)), logx[idx]])) < len(names) + 1:
            continue  # a resample that cannot identify every exponent
        boot.append(_lstsq(logx[idx], logy[idx]).tolist())
    return PowerLaw(names, float(coef[0]), [float(c) for c in coef[1:]], boot, r2)


@dataclass
class LossLaw:
    """L(N, D) = E + A / N**alpha + B / D**beta (Chinchilla form)."""

    E: float
    A: float
    alpha: float
    B: float
    beta: float

    def predict(self, n: float, d: float) -> float:
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def to_dict(self) -> dict:
        return asdict(self)


def fit_loss_law(n: np.ndarray, d: np.ndarray, loss: np.ndarray) -> LossLaw:
    """Fit in log-parameter space with bounds; scaled by typical magnitudes so the solver behaves."""
    n, d, loss = (np.asarray(v, float) for v in (n, d, loss))
    n0, d0 = np.median(n), np.median(d)

    def resid(p):
        e, log_a, alpha, log_b, beta = p
        return e + np.exp(log_a) * (n / n0) ** -alpha + np.exp(log_b) * (d / d0) ** -beta - loss

    best = None
    for alpha0 in (0.2, 0.5):
        for e0 in (0.5 * loss.min(), 0.9 * loss.min()):
            x0 = [e0, np.log(max(loss.mean() - e0, 1e-3) / 2), alpha0, np.log(max(loss.mean() - e0, 1e-3) / 2), alpha0]
            r = least_squares(resid, x0, bounds=([0, -20, 0.01, -20, 0.01], [loss.min(), 5, 2.0, 5, 2.0]))
            if best is None or r.cost < best.cost:
                best = r
    e, log_a, alpha, log_b, beta = best.x
    # Undo the scaling: A / N^alpha with N in raw units.
    return LossLaw(float(e), float(np.exp(log_a) * n0**alpha), float(alpha), float(np.exp(log_b) * d0**beta), float(beta))


def dense_equivalent_params(law: LossLaw, loss: float, d: float) -> float:
    """The dense parameter count whose predicted loss at D tokens equals `loss` (inf if out of the law's range)."""
    gap = loss - law.E - law.B / d**law.beta
    if gap <= 0:
        return float("inf")
    return float((law.A / gap) ** (1 / law.alpha))
