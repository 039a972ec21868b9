"""How well the data determine each constant of a fit: profiles, the basins as good as the best, a verdict.

A multi-start fit returns its lowest point, but a scaling-law objective can be so flat that very different
constants fit the data equally well (datablations' R_D*, R_N*: three basins within 0.2% of one another). Here:

- a *profile* of each constant: on a log grid around its best value, the objective minimised over every other
  fitted parameter, from each retained basin (the profile likelihood of the Huber objective);
- the *tolerance* below which two objectives are indistinguishable, from a likelihood-ratio rule: with delta far
  below the residuals the summed Huber loss is delta times the summed absolute residual less n delta^2 / 2, the
  negative log-likelihood of Laplace errors with their scale profiled out is n log(sum |r|), so a constant's
  ``level`` likelihood-ratio region is where (f + n delta^2/2) rises by at most a factor exp(chi2_1(level) / 2n);
- every basin within that tolerance of the best, and a plain sentence per constant: determined to an interval,
  or not identified (its region runs into the edge of the profiled range).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from repeatlab.errors import RepeatlabError
from repeatlab.laws.forms import FloatArray
from repeatlab.laws.objective import FITTED_CONSTANTS, LogLossModel, huber_objective
from repeatlab.laws.optim import BatchObjective, OptimizerConfig, minimize_batch
from repeatlab.laws.results import ConstantProfile, Identification, LawT, LocalMinimum

_ZOOMS = 4  # times a profile may zoom in on a narrow region
_MIN_INSIDE = 7  # profile points within tolerance that resolve a region well enough
_CONTINUATION_PASSES = 5
LOWER_RTOL = 1e-5
"""A profile that goes below the fit by more than this share of its objective found a basin the grid missed; less
is the last digits of convergence along a flat direction."""


@dataclass(frozen=True, kw_only=True)
class IdentifyConfig:
    """How widely and finely to profile, and the likelihood-ratio level that sets the tolerance."""

    level: float = 0.95
    """Coverage of the likelihood-ratio region; sets the tolerance (about 1% of the objective for 180 runs)."""
    span: float = 10.0
    """Each constant is profiled from best / span to best * span (log-spaced)."""
    n_points: int = 25
    """Grid points of each profile; odd, so that the best value is the middle one."""
    max_basins: int = 10
    """The fit's best this-many basins each start the minimisation at every profile point."""

    def __post_init__(self) -> None:
        if not 0 < self.level < 1:
            raise RepeatlabError(f"IdentifyConfig.level must be in (0, 1), got {self.level!r}")
        if not (np.isfinite(self.span) and self.span > 1):
            raise RepeatlabError(f"IdentifyConfig.span must be a finite number above 1, got {self.span!r}")
        if not isinstance(self.n_points, int) or self.n_points < 3 or self.n_points % 2 == 0:
            raise RepeatlabError(f"IdentifyConfig.n_points must be an odd integer >= 3, got {self.n_points!r}")
        if not isinstance(self.max_basins, int) or self.max_basins < 1:
            raise RepeatlabError(f"IdentifyConfig.max_basins must be a positive integer, got {self.max_basins!r}")


def tolerance(objective: float, n_points: int, *, delta: float, level: float) -> float:
    """The relative rise of the summed Huber objective that the likelihood-ratio rule admits (module docstring)."""
    offset = n_points * delta**2 / 2
    return float((objective + offset) / objective * np.expm1(chi2.ppf(level, df=1) / (2 * n_points)))


def identify_law(
    model: LogLossModel[LawT],
    log_loss: FloatArray,
    minima: Sequence[tuple[LocalMinimum[LawT], FloatArray]],
    *,
    delta: float,
    optimizer: OptimizerConfig,
    config: IdentifyConfig,
) -> Identification[LawT]:
    """Profile every fitted constant of ``model`` and judge it, given the fit's minima (best first, with thetas)."""
    best, best_theta = minima[0]
    rise = tolerance(best.objective, len(log_loss), delta=delta, level=config.level)
    threshold = best.objective * (1 + rise)
    basins = [minimum for minimum, _ in minima if minimum.objective <= threshold]
    starts = np.array([theta for _, theta in minima[: config.max_basins]])
    full = huber_objective(model, log_loss, delta=delta)
    profiles = []
    for index, name in enumerate(model.names):
        constant, logged = FITTED_CONSTANTS[name]
        best_value = float(np.exp(best_theta[index]) if logged else best_theta[index])
        low, high = best_value / config.span, best_value * config.span
        values, objectives = np.empty(0), np.empty(0)
        for _ in range(_ZOOMS):
            if values.size:  # between two points already profiled, which are not repeated
                grid = np.geomspace(low, high, config.n_points + 2)[1:-1]
            else:  # centred on the best value, exactly
                grid = best_value * config.span ** np.linspace(-1, 1, config.n_points)
            fixed = np.log(grid) if logged else grid
            values = np.concatenate([values, grid])
            objectives = np.concatenate([objectives, _profile(full, model, index, fixed, starts, optimizer)])
            order = np.argsort(values)
            values, objectives = values[order], objectives[order]
            inside = np.flatnonzero(objectives <= threshold)
            if len(inside) >= _MIN_INSIDE or inside.min() == 0 or inside.max() == len(values) - 1:
                break
            # A well-determined constant: zoom in on its region so its edges are resolved.
            low, high = values[inside.min() - 1], values[inside.max() + 1]
        profiles.append(_judge(constant, best_value, values, objectives, threshold, rise, config.span))
    lowest = min(min(profile.objectives) for profile in profiles)
    return Identification(
        level=config.level,
        tolerance=rise,
        basins=tuple(basins),
        profiles=tuple(profiles),
        lowest_profiled=lowest,
        went_lower=lowest < best.objective * (1 - LOWER_RTOL),
    )


def _profile(
    full: BatchObjective,
    model: LogLossModel[LawT],
    index: int,
    fixed: FloatArray,
    starts: FloatArray,
    optimizer: OptimizerConfig,
) -> FloatArray:
    """min over the other parameters of the objective, with parameter ``index`` held at each of ``fixed``.

    Each point starts from every basin of the fit; then, until nothing improves, from its neighbours' optima
    (continuation), since on a Huber objective the profile has small local minima of its own.
    """
    lower, upper = np.delete(model.lower, index), np.delete(model.upper, index)

    def solve(held: FloatArray, x0: FloatArray) -> tuple[FloatArray, FloatArray]:
        def objective(x: FloatArray, rows: np.ndarray) -> tuple[FloatArray, FloatArray]:
            f, g = full(np.insert(x, index, held[rows], axis=1), rows)
            return f, np.delete(g, index, axis=1)

        result = minimize_batch(objective, x0, lower=lower, upper=upper, config=optimizer)
        return result.fun, result.x

    n_fixed, n_starts = len(fixed), len(starts)
    fun, x = solve(np.repeat(fixed, n_starts), np.delete(np.tile(starts, (n_fixed, 1)), index, axis=1))
    pick = fun.reshape(n_fixed, n_starts).argmin(axis=1)
    best_f = fun.reshape(n_fixed, n_starts)[np.arange(n_fixed), pick]
    best_x = x.reshape(n_fixed, n_starts, -1)[np.arange(n_fixed), pick]
    for _ in range(_CONTINUATION_PASSES):
        neighbours = np.concatenate([np.arange(1, n_fixed), np.arange(n_fixed - 1)])  # from k+1, then from k-1
        targets = np.concatenate([np.arange(n_fixed - 1), np.arange(1, n_fixed)])
        fun, x = solve(fixed[targets], best_x[neighbours])
        improved = False
        for target, value, point in zip(targets, fun, x, strict=True):
            if value < best_f[target] * (1 - 1e-9):
                best_f[target], best_x[target], improved = value, point, True
        if not improved:
            break
    return best_f


def _judge(
    constant: str,
    best: float,
    grid: FloatArray,
    objectives: FloatArray,
    threshold: float,
    rise: float,
    span: float,
) -> ConstantProfile:
    inside = np.flatnonzero(objectives <= threshold)
    low, high = float(grid[inside.min()]), float(grid[inside.max()])
    open_low, open_high = bool(inside.min() == 0), bool(inside.max() == len(grid) - 1)
    within = f"within {rise:.2%} of the best objective"
    if open_low or open_high:
        edges = {(True, True): "both ends", (True, False): "the bottom", (False, True): "the top"}
        verdict = (
            f"{constant} is not identified by the data: every value from {low:.4g} to {high:.4g} fits {within}, "
            f"and that runs to {edges[open_low, open_high]} of the range profiled ({best / span:.4g} to "
            f"{best * span:.4g})."
        )
    else:
        verdict = f"{constant} = {best:.4g} is determined by the data: only ({low:.4g}, {high:.4g}) fits {within}."
    return ConstantProfile(
        constant=constant,
        best=best,
        values=tuple(float(v) for v in grid),
        objectives=tuple(float(f) for f in objectives),
        low=low,
        high=high,
        identified=not (open_low or open_high),
        verdict=verdict,
    )
