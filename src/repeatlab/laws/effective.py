"""Effective model size: "this 800M model performs like a 400M one".

Fit how a metric scales with parameter count on the control (no-repeat) runs, then invert that curve at a
degraded run's value: the parameter count a control model would need to do as well (N_eff), and N_eff / N.
The same inversion works for any metric that scales smoothly with N on the controls (test loss, loss on
copied text, an induction-head prefix-matching score), so one can compare which ability repetition damages
more: a copying multiplier well below the test-loss multiplier says copying is hurt more than the average.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

from repeatlab.laws.fit import POWER_GRID, FitConfig, StartGrid, fit_power_law
from repeatlab.laws.forms import FloatArray, PowerLaw
from repeatlab.laws.results import FitError, JsonResult, LawFit
from repeatlab.laws.table import RunsLike, as_run_table

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
