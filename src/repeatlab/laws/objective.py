"""Each law as a batched model of log-loss with an analytic gradient, and the summed Huber objective.

The fitted parameters follow Hoffmann et al.: A, B, E enter as their logs a, b, e, so a prediction is the log
of a sum of exponentials of terms linear in them, and the residual is taken on log loss. A model
maps a batch of parameter rows [k, P] to predictions [k, n] and returns the vector-Jacobian product, so the
gradient of the objective costs one pass over the data whatever P is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from repeatlab.laws.forms import ChinchillaLaw, DataConstrainedLaw, FloatArray, PowerLaw
from repeatlab.laws.optim import BatchObjective
from repeatlab.laws.results import LawT

LawT_co = TypeVar("LawT_co", PowerLaw, ChinchillaLaw, DataConstrainedLaw, covariant=True)
Vjp = Callable[[FloatArray], FloatArray]

_BLOCK_ELEMENTS = 32_768
_POSITIVE = 1e-9  # lower bound for exponents and decay constants, which the forms need strictly positive


class LogLossModel(Protocol[LawT_co]):
    """A law's log-loss as a function of its fitted parameters, batched, with bounds and the way back to a law."""

    names: tuple[str, ...]
    lower: FloatArray
    upper: FloatArray

    def log_predict(self, theta: FloatArray) -> tuple[FloatArray, Vjp]: ...

    def to_law(self, theta: FloatArray) -> LawT_co: ...


def _sum_exp(terms: Sequence[FloatArray]) -> tuple[FloatArray, list[FloatArray], FloatArray]:
    """log(sum(exp(t))) over the terms, with the exponentials and their sum (for the softmax weights).

    No max-shift: the terms of a scaling law stay far below exp's overflow at 709, and a step that does overflow
    (or underflow every term) gives a non-finite objective, which the line search rejects. Skipping the shift
    halves the passes over the [k, n] arrays, which is most of the cost of a 4,500-start fit.
    """
    exps = [np.exp(term) for term in terms]
    total = exps[0]
    for value in exps[1:]:
        total = total + value
    return np.log(total), exps, total


@dataclass(frozen=True)
class PowerModel:
    """log L = LSE(a - alpha log N, e), i.e. L = E + (N_c/N)^alpha with E = e^e and N_c = e^(a / alpha)."""

    log_n: FloatArray
    names: tuple[str, ...] = ("a", "e", "alpha")

    @property
    def lower(self) -> FloatArray:
        return np.array([-np.inf, -np.inf, _POSITIVE])

    @property
    def upper(self) -> FloatArray:
        return np.full(3, np.inf)

    def log_predict(self, theta: FloatArray) -> tuple[FloatArray, Vjp]:
        a, e, alpha = (theta[:, i : i + 1] for i in range(3))
        pred, (exp_n, exp_e), total = _sum_exp([a - alpha * self.log_n, e])

        def vjp(u: FloatArray) -> FloatArray:
            v = u / total
            vn = v * exp_n
            return np.stack([vn.sum(1), exp_e[:, 0] * v.sum(1), -(vn @ self.log_n)], axis=1)

        return pred, vjp

    def to_law(self, theta: FloatArray) -> PowerLaw:
        a, e, alpha = (float(v) for v in theta)
        return PowerLaw(E=float(np.exp(e)), n_c=float(np.exp(a / alpha)), alpha=alpha)


@dataclass(frozen=True)
class ChinchillaModel:
    """log L = LSE(a - alpha log N, b - beta log D, e) (Hoffmann et al. 2022, eq. 10)."""

    log_n: FloatArray
    log_d: FloatArray
    names: tuple[str, ...] = ("a", "b", "e", "alpha", "beta")

    @property
    def lower(self) -> FloatArray:
        return np.full(5, -np.inf)

    @property
    def upper(self) -> FloatArray:
        return np.full(5, np.inf)

    def log_predict(self, theta: FloatArray) -> tuple[FloatArray, Vjp]:
        a, b, e, alpha, beta = (theta[:, i : i + 1] for i in range(5))
        pred, (exp_n, exp_d, exp_e), total = _sum_exp([a - alpha * self.log_n, b - beta * self.log_d, e])

        def vjp(u: FloatArray) -> FloatArray:
            v = u / total
            vn, vd = v * exp_n, v * exp_d
            return np.stack(
                [vn.sum(1), vd.sum(1), exp_e[:, 0] * v.sum(1), -(vn @ self.log_n), -(vd @ self.log_d)], axis=1
            )

        return pred, vjp

    def to_law(self, theta: FloatArray) -> ChinchillaLaw:
        return chinchilla_from_theta(theta)


FITTED_CONSTANTS: dict[str, tuple[str, bool]] = {
    "a": ("A", True),
    "b": ("B", True),
    "e": ("E", True),
    "alpha": ("alpha", False),
    "beta": ("beta", False),
    "r_d_star": ("r_d_star", False),
    "r_n_star": ("r_n_star", False),
}
"""Fitted parameter of the Chinchilla and data-constrained models -> (the law's constant, whether the parameter is
that constant's log)."""


def chinchilla_from_theta(theta: FloatArray) -> ChinchillaLaw:
    a, b, e, alpha, beta = (float(v) for v in theta)
    return ChinchillaLaw(A=float(np.exp(a)), B=float(np.exp(b)), E=float(np.exp(e)), alpha=alpha, beta=beta)


def chinchilla_theta(law: ChinchillaLaw) -> FloatArray:
    return np.array([np.log(law.A), np.log(law.B), np.log(law.E), law.alpha, law.beta])


@dataclass(frozen=True)
class DataConstrainedModel:
    """log L = LSE(a - alpha log N', b - beta log D', e) with N', D' of Muennighoff et al. 2023.

    U_N = min(N, N_opt(U)) follows the base coefficients being fitted: log N_opt(U) = (a - b + log(alpha/beta)
    + beta log U) / alpha. With ``fixed_base`` the five base parameters are held and only R_D*, R_N* move.
    """

    log_n: FloatArray
    log_u: FloatArray
    repeats_d: FloatArray
    """R_D = max(D/U - 1, 0), which depends on the data only."""
    fixed_base: ChinchillaLaw | None = None

    @property
    def names(self) -> tuple[str, ...]:
        base = () if self.fixed_base is not None else ("a", "b", "e", "alpha", "beta")
        return (*base, "r_d_star", "r_n_star")

    @property
    def lower(self) -> FloatArray:
        base = [] if self.fixed_base is not None else [-np.inf, -np.inf, -np.inf, _POSITIVE, _POSITIVE]
        return np.array([*base, _POSITIVE, _POSITIVE])

    @property
    def upper(self) -> FloatArray:
        return np.full(len(self.names), np.inf)

    def _full(self, theta: FloatArray) -> FloatArray:
        if self.fixed_base is None:
            return theta
        base = np.broadcast_to(chinchilla_theta(self.fixed_base), (len(theta), 5))
        return np.concatenate([base, theta], axis=1)

    def log_predict(self, theta: FloatArray) -> tuple[FloatArray, Vjp]:
        a, b, e, alpha, beta, r_d, r_n = (self._full(theta)[:, i : i + 1] for i in range(7))
        log_nopt = (a - b + np.log(alpha / beta) + beta * self.log_u) / alpha
        capped = self.log_n > log_nopt  # the unique data cannot feed this many parameters compute-optimally
        log_un = np.where(capped, log_nopt, self.log_n)
        repeats_n = np.where(capped, np.expm1(self.log_n - log_un), 0.0)
        decay_n = np.exp(-repeats_n / r_n)
        q_n = r_n * (1 - decay_n)
        log_n_eff = log_un + np.log1p(q_n)
        decay_d = np.exp(-self.repeats_d / r_d)
        q_d = r_d * (1 - decay_d)
        log_d_eff = self.log_u + np.log1p(q_d)
        pred, (exp_n, exp_d, exp_e), total = _sum_exp([a - alpha * log_n_eff, b - beta * log_d_eff, e])

        # d log N' / d log U_N (only where U_N follows the parameters) and the decay-constant derivatives.
        dn_dun = np.where(capped, 1 - decay_n * (repeats_n + 1) / (1 + q_n), 0.0)
        dn_drn = ((1 - decay_n) - repeats_n / r_n * decay_n) / (1 + q_n)
        dd_drd = ((1 - decay_d) - self.repeats_d / r_d * decay_d) / (1 + q_d)

        def vjp(u: FloatArray) -> FloatArray:
            v = u / total
            un, ud = v * exp_n, v * exp_d
            un_cap = un * dn_dun  # sensitivity flowing through log U_N = log N_opt(U)
            grads = [
                un.sum(1) - un_cap.sum(1),
                ud.sum(1) + un_cap.sum(1),
                exp_e[:, 0] * v.sum(1),
                -(un * log_n_eff).sum(1) - ((1 - alpha * log_nopt) / alpha * un_cap).sum(1),
                -(ud * log_d_eff).sum(1) - (un_cap * (self.log_u - 1 / beta)).sum(1),
                -(beta * ud * dd_drd).sum(1),
                -(alpha * un * dn_drn).sum(1),
            ]
            full = np.stack(grads, axis=1)
            return full if self.fixed_base is None else full[:, 5:]

        return pred, vjp

    def to_law(self, theta: FloatArray) -> DataConstrainedLaw:
        base = self.fixed_base if self.fixed_base is not None else chinchilla_from_theta(theta[:5])
        return DataConstrainedLaw(base=base, r_d_star=float(theta[-2]), r_n_star=float(theta[-1]))


def huber_objective(
    model: LogLossModel[LawT], log_loss: FloatArray, *, delta: float, weights: FloatArray | None = None
) -> BatchObjective:
    """The summed Huber loss of log-loss residuals, and its gradient, for a batch of parameter rows.

    Args:
        weights: per-point multiplicities, [n] for every row or [S, n] one per problem (bootstrap resamples
            are counts of how often each point was drawn).
    """
    # Rows are processed in blocks whose [rows, n] temporaries fit in cache: the work is a dozen elementwise
    # passes, so it is memory-bound, and a block that stays in L2 is several times faster than one pass over all.
    block = max(1, _BLOCK_ELEMENTS // len(log_loss))

    def objective(theta: FloatArray, rows: np.ndarray) -> tuple[FloatArray, FloatArray]:
        f = np.empty(len(theta))
        g = np.empty_like(theta)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for start in range(0, len(theta), block):
                part = slice(start, start + block)
                pred, vjp = model.log_predict(theta[part])
                residual = pred - log_loss
                slope = np.clip(residual, -delta, delta)  # Huber's derivative
                loss = slope * (residual - 0.5 * slope)  # = r^2/2 within delta, delta (|r| - delta/2) beyond
                if weights is not None:
                    w = weights[rows[part]] if weights.ndim == 2 else weights
                    loss *= w
                    slope *= w
                f[part] = loss.sum(1)
                g[part] = vjp(slope)
        return f, g

    return objective
