"""Effective model size: "this 800M model performs like a 400M one".

Fit how a metric scales with parameter count on the control (no-repeat) runs, then invert that curve at a
degraded run's value: the parameter count a control model would need to do as well (N_eff), and N_eff / N.
The same inversion works for any metric that scales smoothly with N on the controls (test loss, loss on
copied text, an induction-head prefix-matching score), so one can compare which ability repetition damages
more: a copying multiplier well below the test-loss multiplier says copying is hurt more than the average.

``control_curve`` is the one rule for how the controls are inverted, used by the sweep's results table, the report
and the fine-tuning comparison: with ``MIN_POWER_FIT_SIZES`` sizes or more, the power law L(N) = E + (N_c / N)^alpha
(``fit_metric_scaling``) when it explains at least ``MIN_R_SQUARED`` of the controls' variance; with two or three
sizes (too few for three constants), log N interpolated piecewise-linearly against the log metric through the
controls, only when the metric improves with every step in size. Effective sizes beyond the control sizes are
extrapolations, which ``outside_controls`` names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from repeatlab.laws.fit import POWER_GRID, FitConfig, StartGrid, fit_power_law
from repeatlab.laws.forms import FloatArray, PowerLaw
from repeatlab.laws.results import FitError, JsonResult, LawFit
from repeatlab.laws.table import RunsLike, RunTable, as_run_table

InversionMethod = Literal["power-law fit", "interpolation"]
MIN_POWER_FIT_SIZES = 4
"""A three-constant power law needs one more control size than constants."""
MIN_R_SQUARED = 0.5
"""A metric's law fitted to four or more control sizes is inverted into effective sizes only when it explains at
least this much of their variance; below it the 'effective size' of a run is noise (e.g. induction scores of
models that have no induction heads)."""


@dataclass(frozen=True, kw_only=True)
class MetricScaling(JsonResult):
    """A metric's power law in N on the control runs, ready to be inverted."""

    metric: str
    """Column of the run table."""
    higher_is_better: bool
    """True for scores in [0, 1] (accuracy, prefix-matching): the law is then fitted to 1 - score."""
    fit: LawFit[PowerLaw]
    """The power-law fit of the (loss-like) metric on the controls."""

    def effective_params(self, values: ArrayLike) -> FloatArray:
        """N_eff: the control parameter count with this metric value (``inf`` beyond the law's asymptote)."""
        value = np.asarray(values, dtype=np.float64)
        return self.fit.law.params_for_loss(1 - value if self.higher_is_better else value)


@dataclass(frozen=True, kw_only=True)
class EffectiveSize(JsonResult):
    """One run's effective size on one metric."""

    run: int
    """Row of the run in the table."""
    metric: str
    """Which metric's scaling was inverted."""
    n_params: float
    """N: the run's actual parameter count."""
    value: float
    """The run's value of the metric."""
    effective_params: float
    """N_eff: parameters a control model needs for the same value."""
    multiplier: float
    """N_eff / N: below 1, the run performs like a smaller model."""


def fit_metric_scaling(
    runs: RunsLike,
    metric: str = "loss",
    *,
    higher_is_better: bool = False,
    grid: StartGrid = POWER_GRID,
    config: FitConfig | None = None,
) -> MetricScaling:
    """Fit L(N) = E + (N_c / N)^alpha to ``metric`` on the control runs of ``runs``."""
    controls = as_run_table(runs).controls()
    values = controls.column(metric)
    finite = np.isfinite(values)
    if higher_is_better:
        if np.any(finite & ((values < 0) | (values >= 1))):
            raise FitError(f"{metric} is marked higher-is-better, so it must be a score in [0, 1)")
        values = 1 - values
    if not finite.all():
        raise FitError(f"{metric} is missing (NaN) on {int((~finite).sum())} control run(s)")
    name = f"1 - {metric}" if higher_is_better else metric
    fitted = replace(controls, metrics={name: values}) if higher_is_better else controls
    fit = fit_power_law(fitted, metric=name, controls_only=False, grid=grid, config=config)
    return MetricScaling(metric=metric, higher_is_better=higher_is_better, fit=fit)


def effective_sizes(runs: RunsLike, scalings: Sequence[MetricScaling]) -> tuple[EffectiveSize, ...]:
    """N_eff and N_eff / N of every non-control run, for every metric scaling given.

    Runs where a metric is missing (NaN) are skipped for that metric.
    """
    table = as_run_table(runs)
    degraded = np.flatnonzero(~table.control_mask())
    sizes = []
    for scaling in scalings:
        values = table.column(scaling.metric)[degraded]
        present = np.isfinite(values)
        n_eff = np.full(len(values), np.nan)
        n_eff[present] = scaling.effective_params(values[present])
        for run, value, effective in zip(degraded[present], values[present], n_eff[present], strict=True):
            n_params = float(table.params[run])
            sizes.append(
                EffectiveSize(
                    run=int(run),
                    metric=scaling.metric,
                    n_params=n_params,
                    value=float(value),
                    effective_params=float(effective),
                    multiplier=float(effective / n_params),
                )
            )
    return tuple(sizes)


@dataclass(frozen=True, kw_only=True)
class ControlCurve:
    """A metric of the control runs against N (mean over seeds per size), and how it is inverted into N_eff."""

    metric: str
    higher_is_better: bool
    params: FloatArray
    """Control sizes, ascending."""
    values: FloatArray
    """The metric (as recorded, not as a loss) at each size."""
    method: InversionMethod
    scaling: MetricScaling | None = None
    """The power-law fit (method ``power-law fit``)."""

    @property
    def fit(self) -> LawFit[PowerLaw] | None:
        return self.scaling.fit if self.scaling is not None else None

    def as_loss(self, values: ArrayLike) -> FloatArray:
        """The metric as a quantity that falls with N (1 - score for higher-is-better scores)."""
        value = np.asarray(values, dtype=np.float64)
        return 1.0 - value if self.higher_is_better else value

    def effective_params(self, values: ArrayLike) -> FloatArray:
        """N_eff of runs whose metric is ``values``; NaN where the metric is missing or out of the law's domain."""
        loss = self.as_loss(values)
        out = np.full(loss.shape, np.nan)
        ok = np.isfinite(loss) & (loss > 0)
        if self.scaling is not None:
            out[ok] = self.scaling.fit.law.params_for_loss(loss[ok])
        else:
            out[ok] = _interpolate_log(loss[ok], self.as_loss(self.values), self.params)
        return out


def control_curve(params: ArrayLike, values: ArrayLike, *, metric: str = "loss",
                  higher_is_better: bool = False) -> ControlCurve:
    """The controls' curve of ``metric`` (one value per control run; seeds of a size are averaged), by the rule of
    the module docstring; ``FitError`` with a sentence saying why when the controls cannot be inverted."""
    n = np.asarray(params, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(n) & np.isfinite(v)
    sizes, where = np.unique(n[keep], return_inverse=True)
    means = np.bincount(where, weights=v[keep], minlength=len(sizes)) / np.bincount(where, minlength=len(sizes))
    if len(sizes) < 2:
        raise FitError(f"needs control runs of at least 2 model sizes (found {len(sizes)})")
    loss = 1.0 - means if higher_is_better else means
    if np.any(loss <= 0):
        raise FitError(f"the controls' {metric} must be {'below 1' if higher_is_better else 'positive'} to fit a "
                       f"power law")
    curve = {"metric": metric, "higher_is_better": higher_is_better, "params": sizes, "values": means}
    if len(sizes) < MIN_POWER_FIT_SIZES:
        if np.any(np.diff(loss) >= 0):
            raise FitError(f"the controls' {metric} does not improve steadily with size, so it cannot be inverted")
        return ControlCurve(**curve, method="interpolation")
    table = RunTable(params=sizes, loss=means)
    try:
        with np.errstate(all="ignore"):  # far-off starts of the multi-start fit overflow harmlessly
            scaling = fit_metric_scaling(table, "loss", higher_is_better=higher_is_better)
    except ValueError as exc:  # FitError included
        raise FitError(f"the power-law fit of the controls failed ({exc})") from None
    if not scaling.fit.r_squared >= MIN_R_SQUARED:
        raise FitError(f"the controls' {metric} is not explained by size (power-law R² = {scaling.fit.r_squared:.2f} "
                       f"< {MIN_R_SQUARED:g}), so its effective sizes would be noise")
    return ControlCurve(**curve, method="power-law fit", scaling=replace(scaling, metric=metric))


def outside_controls(n_eff: float, control_params: ArrayLike) -> Literal["below", "above"] | None:
    """Where an effective size lies outside the control sizes (the curve is extrapolated there, by orders of
    magnitude with few controls): ``below`` the smallest, ``above`` the largest, ``None`` inside."""
    sizes = np.asarray(control_params, dtype=np.float64)
    if n_eff < np.min(sizes) * (1 - 1e-9):
        return "below"
    if n_eff > np.max(sizes) * (1 + 1e-9):
        return "above"
    return None


def _interpolate_log(values: FloatArray, control_values: FloatArray, control_params: FloatArray) -> FloatArray:
    """Piecewise-linear log N against log value through the controls, extended by the end segments."""
    order = np.argsort(control_values)
    x, y = np.log(control_values[order]), np.log(control_params[order])
    logv = np.log(np.maximum(values, np.finfo(float).tiny))
    result = np.interp(logv, x, y)
    slope_lo = (y[1] - y[0]) / (x[1] - x[0]) if x[1] != x[0] else 0.0
    slope_hi = (y[-1] - y[-2]) / (x[-1] - x[-2]) if x[-1] != x[-2] else 0.0
    result = np.where(logv < x[0], y[0] + slope_lo * (logv - x[0]), result)
    result = np.where(logv > x[-1], y[-1] + slope_hi * (logv - x[-1]), result)
    return np.exp(result)
