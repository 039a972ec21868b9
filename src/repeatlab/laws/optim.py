"""A batched L-BFGS-B: many independent small minimisations advanced together in numpy.

Fitting a scaling law means running L-BFGS from thousands of starting points (Hoffmann et al.'s grid has 4,500)
and refitting it on a thousand bootstrap resamples. Each problem has five or so parameters, so a per-start
``scipy.optimize.minimize`` loop spends almost all its time in Python overhead. Here every start is one row of
an array: the objective is evaluated for all active rows in one vectorised call, the two-loop recursion runs over
the batch, and each row has its own line search, history and stopping test, so a row stops exactly when it
would have stopped alone. Bounds are handled as in projected L-BFGS: variables held at a bound by their gradient
are frozen for the step and trial points are projected onto the box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from repeatlab.errors import RepeatlabError
from repeatlab.laws.forms import FloatArray

BatchObjective = Callable[[FloatArray, NDArray[np.intp]], tuple[FloatArray, FloatArray]]
"""objective(x, rows) -> (f, g): x is [k, P] (one row per problem), rows are the problems' indices in the batch
(so the objective can pick per-problem data, e.g. bootstrap weights); f is [k], g is [k, P]."""

_ARMIJO = 1e-4  # sufficient-decrease constant (Nocedal & Wright's c1)
_CURVATURE = 0.9  # upper half of the strong Wolfe condition (c2): reject steps that overshoot the valley floor


@dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
    """Stopping rules and memory of the batched L-BFGS-B."""

    max_iter: int = 2000
    """Iterations per start before it is reported as not converged."""
    history: int = 10
    """Correction pairs kept (the m of L-BFGS)."""
    gtol: float = 1e-11
    """Stop when every component of the projected gradient is at most this (absolute)."""
    ftol: float = 1e-10
    """Stop when the last ``patience`` iterations together lowered f by at most this fraction of |f|, or when
    the quasi-Newton model predicts no more than that still to gain. It is relative to |f| alone: scaling-law
    objectives are ~1e-3, and scipy's rule (2.2e-9 of max(|f|, 1), one iteration) would stop them early."""
    patience: int = 10
    """Iterations over which ``ftol`` is measured; a window, not one step, so that a start crawling along a
    plateau (an exponent driven to where its term vanishes) is stopped instead of running to ``max_iter``."""
    max_backtracks: int = 50
    """Step halvings tried in one line search before the step is declared failed."""

    def __post_init__(self) -> None:
        for name in ("max_iter", "history", "patience", "max_backtracks"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise RepeatlabError(f"OptimizerConfig.{name} must be a positive integer, got {value!r}")
        for name in ("gtol", "ftol"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise RepeatlabError(f"OptimizerConfig.{name} must be a non-negative number, got {value!r}")


@dataclass(frozen=True)
class BatchResult:
    """Where each start ended."""

    x: FloatArray
    """[S, P] final points."""
    fun: FloatArray
    """[S] objective at ``x`` (inf where the start was not even finite)."""
    converged: NDArray[np.bool_]
    """[S] whether a stopping test (gradient, decrease, predicted decrease) was met before ``max_iter``."""
    n_iter: NDArray[np.int64]
    """[S] iterations taken."""


def minimize_batch(
    objective: BatchObjective,
    x0: FloatArray,
    *,
    lower: FloatArray | None = None,
    upper: FloatArray | None = None,
    config: OptimizerConfig | None = None,
) -> BatchResult:
    """Minimise S independent problems from the S rows of ``x0`` within the box [lower, upper]."""
    config = config or OptimizerConfig()
    x = np.array(x0, dtype=np.float64, ndmin=2)
    n_starts, n_dim = x.shape
    lo = np.full(n_dim, -np.inf) if lower is None else np.asarray(lower, dtype=np.float64)
    hi = np.full(n_dim, np.inf) if upper is None else np.asarray(upper, dtype=np.float64)
    x = np.clip(x, lo, hi)
    f, g = objective(x, np.arange(n_starts))
    f = np.where(_finite_rows(f, g), f, np.inf)
    converged = np.zeros(n_starts, dtype=bool)
    n_iter = np.zeros(n_starts, dtype=np.int64)
    active = np.isfinite(f)
    converged[active] = _small_gradient(x[active], g[active], lo, hi, config.gtol)
    active &= ~converged

    m = config.history
    s_hist = np.zeros((m, n_starts, n_dim))
    y_hist = np.zeros((m, n_starts, n_dim))
    rho = np.zeros((m, n_starts))  # rho = 0 marks an empty or skipped slot: it drops out of the recursion
    gamma = np.zeros(n_starts)  # initial inverse-Hessian scale; 0 means "no curvature pair yet"
    newest = 0  # ring-buffer slot the next pair goes to (shared: every active row writes each iteration)
    window = np.full((config.patience, n_starts), np.inf)  # f at the last `patience` iterations, oldest first

    for iteration in range(config.max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        xa, fa, ga = x[idx], f[idx], g[idx]
        free = ~(((xa <= lo) & (ga > 0)) | ((xa >= hi) & (ga < 0)))
        q = np.where(free, ga, 0.0)
        d = -_two_loop(q, s_hist[:, idx], y_hist[:, idx], rho[:, idx], gamma[idx], newest)
        d = np.where(free, d, 0.0)
        decrement = -np.einsum("kp,kp->k", ga, d)  # quasi-Newton estimate of twice the decrease still available
        steepest = (gamma[idx] == 0) | ~(decrement > 0)
        # Converged when what is left to gain is below ftol of f: near the minimum of a ~1e-3 objective this is
        # where a line search would otherwise fail on rounding, however small the gradient already is.
        settled = ~steepest & (decrement <= config.ftol * np.abs(fa))
        if settled.any():
            converged[idx[settled]] = True
            active[idx[settled]] = False
            rest = ~settled
            idx, xa, fa, ga, q, d, steepest = idx[rest], xa[rest], fa[rest], ga[rest], q[rest], d[rest], steepest[rest]
            if idx.size == 0:
                continue
        # Without curvature information, or if the quasi-Newton direction is not downhill, take a unit-length
        # steepest-descent step and forget the history (as L-BFGS-B does on a bad direction).
        if steepest.any():
            qs = q[steepest]
            d[steepest] = -qs / np.maximum(np.linalg.norm(qs, axis=1, keepdims=True), 1e-300)
            rho[:, idx[steepest]] = 0.0
            gamma[idx[steepest]] = 0.0
        x_new, f_new, g_new, ok = _line_search(objective, idx, xa, fa, ga, d, lo, hi, config.max_backtracks)

        s = x_new - xa
        y = g_new - ga
        sy = np.einsum("kp,kp->k", s, y)
        yy = np.einsum("kp,kp->k", y, y)
        keep = ok & (sy > np.finfo(float).eps * yy)
        s_hist[newest, idx] = np.where(keep[:, None], s, 0.0)
        y_hist[newest, idx] = np.where(keep[:, None], y, 0.0)
        rho[newest, idx] = np.where(keep, 1.0 / np.where(keep, sy, 1.0), 0.0)
        gamma[idx[keep]] = sy[keep] / yy[keep]
        newest = (newest + 1) % m

        x[idx[ok]], f[idx[ok]], g[idx[ok]] = x_new[ok], f_new[ok], g_new[ok]
        n_iter[idx] += 1
        slot = iteration % config.patience
        decrease = window[slot, idx] - f[idx]  # over the last `patience` iterations (inf until there are that many)
        window[slot, idx] = f[idx]
        done = ok & ((decrease <= config.ftol * np.abs(f[idx])) | _small_gradient(x_new, g_new, lo, hi, config.gtol))
        converged[idx[done]] = True
        # A failed line search along steepest descent means no progress is possible: give up on that start.
        stuck = ~ok & steepest
        active[idx[done | stuck]] = False
        rho[:, idx[~ok]] = 0.0
        gamma[idx[~ok]] = 0.0
    return BatchResult(x=x, fun=f, converged=converged, n_iter=n_iter)


def _finite_rows(f: FloatArray, g: FloatArray) -> NDArray[np.bool_]:
    return np.isfinite(f) & np.all(np.isfinite(g), axis=1)


def _small_gradient(x: FloatArray, g: FloatArray, lo: FloatArray, hi: FloatArray, gtol: float) -> NDArray[np.bool_]:
    projected = np.clip(x - g, lo, hi) - x
    return np.max(np.abs(projected), axis=1) <= gtol


def _two_loop(
    q: FloatArray, s_hist: FloatArray, y_hist: FloatArray, rho: FloatArray, gamma: FloatArray, newest: int
) -> FloatArray:
    """H q for each row, with H the L-BFGS inverse-Hessian approximation (Nocedal & Wright, Algorithm 7.4)."""
    m = rho.shape[0]
    q = q.copy()
    alphas = []
    order = [(newest - 1 - j) % m for j in range(m)]  # newest pair first
    for slot in order:
        a = rho[slot] * np.einsum("kp,kp->k", s_hist[slot], q)
        q -= a[:, None] * y_hist[slot]
        alphas.append(a)
    r = gamma[:, None] * q
    for slot, a in zip(reversed(order), reversed(alphas), strict=True):
        b = rho[slot] * np.einsum("kp,kp->k", y_hist[slot], r)
        r += s_hist[slot] * (a - b)[:, None]
    return r


def _line_search(
    objective: BatchObjective,
    idx: NDArray[np.intp],
    xa: FloatArray,
    fa: FloatArray,
    ga: FloatArray,
    d: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    max_backtracks: int,
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.bool_]]:
    """A projected line search from a unit step: backtrack while the step is too long, extend while too short.

    A step is acceptable when it lowers f enough (Armijo) and does not overshoot: the slope along d at the new
    point may not be steeply uphill (g(t).d <= c2 |g(0).d|), which keeps a long quasi-Newton step from leaping
    across a ridge into a neighbouring basin. Rejected steps shrink by safeguarded quadratic interpolation. A
    full step that is still steeply downhill at its end (g(t).d < -c2 |g(0).d|, typical where the Huber loss is
    linear and the curvature estimate too high) is doubled while f keeps falling, so a start does not crawl.

    Returns the accepted points, their values and gradients, and which rows found a step.
    """
    k = len(idx)
    x_new, f_new, g_new = xa.copy(), fa.copy(), ga.copy()
    ok = np.zeros(k, dtype=bool)
    slope0 = np.einsum("kp,kp->k", ga, d)  # < 0: d is a descent direction
    t = np.ones(k)
    end_slope = np.zeros(k)
    pending = np.arange(k)
    for _ in range(max_backtracks):
        xt, ft, gt, armijo, slope_t = _trial(objective, idx, xa, fa, ga, d, t, pending, lo, hi)
        accept = armijo & (slope_t <= _CURVATURE * np.abs(slope0[pending]))
        hit = pending[accept]
        x_new[hit], f_new[hit], g_new[hit] = xt[accept], ft[accept], gt[accept]
        ok[hit], end_slope[hit] = True, slope_t[accept]
        # Shrink the rest: minimise the quadratic through f(0), f'(0) and f(t), kept within [0.1 t, 0.5 t].
        rest = ~accept & np.any(xt != xa[pending], axis=1)
        tr, slope_r = t[pending[rest]], slope0[pending[rest]]
        excess = ft[rest] - fa[pending[rest]] - tr * slope_r
        with np.errstate(divide="ignore", invalid="ignore"):
            quad = np.where(np.isfinite(ft[rest]) & (excess > 0), -slope_r * tr**2 / (2 * excess), 0.1 * tr)
        t[pending[rest]] = np.clip(quad, 0.1 * tr, 0.5 * tr)
        pending = pending[rest]
        if pending.size == 0:
            break

    grow = np.flatnonzero(ok & (t == 1) & (end_slope < -_CURVATURE * np.abs(slope0)))
    for _ in range(max_backtracks):
        if grow.size == 0:
            break
        t[grow] *= 2
        xt, ft, gt, armijo, slope_t = _trial(objective, idx, xa, fa, ga, d, t, grow, lo, hi)
        better = armijo & (ft < f_new[grow]) & np.any(xt != x_new[grow], axis=1)
        hit = grow[better]
        x_new[hit], f_new[hit], g_new[hit] = xt[better], ft[better], gt[better]
        grow = grow[better & (slope_t < -_CURVATURE * np.abs(slope0[grow]))]
    return x_new, f_new, g_new, ok


def _trial(
    objective: BatchObjective,
    idx: NDArray[np.intp],
    xa: FloatArray,
    fa: FloatArray,
    ga: FloatArray,
    d: FloatArray,
    t: FloatArray,
    rows: NDArray[np.intp],
    lo: FloatArray,
    hi: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.bool_], FloatArray]:
    """Evaluate the projected points x + t d of ``rows``: value, gradient, Armijo test, slope along d."""
    xt = np.clip(xa[rows] + t[rows, None] * d[rows], lo, hi)
    ft, gt = objective(xt, idx[rows])
    finite = _finite_rows(ft, gt)
    change = np.einsum("kp,kp->k", ga[rows], xt - xa[rows])  # first-order change along the projected step
    armijo = finite & (change < 0) & (ft <= fa[rows] + _ARMIJO * change)
    slope_t = np.einsum("kp,kp->k", np.where(finite[:, None], gt, 0.0), d[rows])
    return xt, ft, gt, armijo, slope_t
