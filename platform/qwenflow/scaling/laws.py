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
    cells: int = 0  # sweep cells (N, D) the law was fitted on
    reliable: bool = True  # False: fitted on grid-edge optima (bounds, not optima)
    note: str = ""  # what was excluded or why the law is only indicative

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
    def from_dict(cls, d: dict | None) -> PowerLaw | None:
        return None if d is None else cls(**d)


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


E_MIN = 0.1  # nats: natural text never has zero irreducible loss
EXP_BOUNDS = (0.05, 1.0)  # Chinchilla-style exponents measured so far lie in ~0.1-0.7


@dataclass
class LossLaw:
    """L(N, D) = E + A / N**alpha + B / D**beta (Chinchilla form), with bootstrap refits and a degeneracy note."""

    E: float
    A: float
    alpha: float
    B: float
    beta: float
    boot: list[list[float]] = field(default_factory=list)  # each [E, A, alpha, B, beta]
    note: str = ""  # non-empty: the law is degenerate or underdetermined; says why

    def predict(self, n, d):
        return self.E + self.A / np.asarray(n, float) ** self.alpha + self.B / np.asarray(d, float) ** self.beta

    def param_interval(self, name: str, level: float = 0.9) -> tuple[float, float]:
        i = ["E", "A", "alpha", "B", "beta"].index(name)
        if not self.boot:
            v = getattr(self, name)
            return v, v
        lo, hi = np.quantile([b[i] for b in self.boot], [(1 - level) / 2, (1 + level) / 2])
        return float(lo), float(hi)

    @property
    def well_defined(self) -> bool:
        return not self.note

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LossLaw:
        return cls(**d)


def _fit_loss_once(n, d, loss, starts) -> np.ndarray:
    """Best of several bounded least-squares starts; parameters [E, log a, alpha, log b, beta] on scaled N, D."""
    lo_e, hi_e = E_MIN, max(E_MIN + 1e-6, loss.min() - 1e-6)

    ln_n, ln_d = np.log(n), np.log(d)

    def resid(p):
        e, log_a, alpha, log_b, beta = p
        return e + np.exp(log_a - alpha * ln_n) + np.exp(log_b - beta * ln_d) - loss

    def jac(p):
        e, log_a, alpha, log_b, beta = p
        tn, td = np.exp(log_a - alpha * ln_n), np.exp(log_b - beta * ln_d)
        return np.column_stack([np.ones_like(tn), tn, -tn * ln_n, td, -td * ln_d])

    bounds = ([lo_e, -30, EXP_BOUNDS[0], -30, EXP_BOUNDS[0]], [hi_e, 10, EXP_BOUNDS[1], 10, EXP_BOUNDS[1]])
    best = None
    for x0 in starts:
        x0 = np.clip(x0, np.array(bounds[0]) + 1e-9, np.array(bounds[1]) - 1e-9)
        r = least_squares(resid, x0, jac=jac, bounds=bounds)
        if best is None or r.cost < best.cost:
            best = r
    assert best is not None  # starts is never empty
    return best.x


def fit_loss_law(n: np.ndarray, d: np.ndarray, loss: np.ndarray, n_boot: int = 200, seed: int = 0) -> LossLaw:
    """Bounded fit (E >= E_MIN, exponents in EXP_BOUNDS) from a grid of starts, bootstrap over cells, and a note
    when the data cannot pin the law down (too few cells, an exponent on its bound, a term below the noise)."""
    n, d, loss = (np.asarray(v, float) for v in (n, d, loss))
    n0, d0 = float(np.median(n)), float(np.median(d))
    ns, ds = n / n0, d / d0  # scaled so the solver sees O(1) numbers
    starts = []
    for ef in (0.3, 0.6, 0.9):
        gap = max(loss.mean() - ef * loss.min(), 1e-3)
        for a0 in (0.15, 0.5):
            for b0 in (0.15, 0.5):
                starts.append([ef * loss.min(), np.log(gap / 2), a0, np.log(gap / 2), b0])
    x = _fit_loss_once(ns, ds, loss, starts)

    def raw(p):  # undo the scaling: A / N^alpha with N in raw units
        e, log_a, alpha, log_b, beta = p
        return [float(e), float(np.exp(log_a) * n0**alpha), float(alpha), float(np.exp(log_b) * d0**beta), float(beta)]

    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot if len(loss) >= 6 else 0):
        idx = rng.integers(0, len(loss), len(loss))
        if len(np.unique(n[idx])) < 2 or len(np.unique(d[idx])) < 2:
            continue
        boot.append(raw(_fit_loss_once(ns[idx], ds[idx], loss[idx], [x])))
    e, a, alpha, b, beta = raw(x)
    law = LossLaw(e, a, alpha, b, beta, boot=boot)
    law.note = _degeneracy(law, n, d, loss)
    return law


def _degeneracy(law: LossLaw, n, d, loss) -> str:
    """Why the fitted law cannot be trusted for N or D comparisons ('' when it can)."""
    reasons = []
    if len(loss) < 6:
        reasons.append(f"only {len(loss)} cells for 5 parameters (underdetermined)")
    rms = float(np.sqrt(np.mean((law.predict(n, d) - loss) ** 2)))
    for name, coef, exp, x in (("N", law.A, law.alpha, n), ("D", law.B, law.beta, d)):
        spread = coef / x.min() ** exp - coef / x.max() ** exp
        if spread < max(rms, 1e-3):
            reasons.append(
                f"the {name} term changes the loss by {spread:.3g} nats across the fitted {name} range, "
                f"not more than the fit's residual {rms:.3g}: the sweep shows no {name} dependence"
            )
        elif min(abs(exp - b) for b in EXP_BOUNDS) < 1e-3:
            reasons.append(f"the {name} exponent sits on its bound {exp:.2f}")
    if law.E - E_MIN < 1e-3:
        reasons.append(f"E sits on its lower bound {E_MIN}")
    return "; ".join(reasons)


def dense_equivalent_params(law: LossLaw, loss: float, d: float) -> float:
    """The dense parameter count whose predicted loss at D tokens equals `loss`.

    Raises ValueError with the reason when that size is undefined: a degenerate law, or a loss at or below
    the law's infinite-size limit at this D."""
    if law.note:
        raise ValueError(f"loss law not well defined ({law.note})")
    gap = loss - law.E - law.B / d**law.beta
    if gap <= 0:
        raise ValueError(f"loss {loss:.4f} is at or below the law's infinite-size limit {loss - gap:.4f} at D={d:.3g}")
    return float((law.A / gap) ** (1 / law.alpha))
