"""Effective model size: the parameter count a control model would need to match a repeated run's metric.

Hernandez et al. 2022 read the damage done by repeated data as a smaller *effective* model. When the sweep's
``results.parquet`` already holds effective sizes (``n_eff``, ``n_eff_copying``, ... written by ``repeatlab sweep
collect``) they are used as they are. Otherwise the control runs' metric is fitted against parameters with
``repeatlab.laws.fit_metric_scaling`` (L(N) = E + (N_c / N)^alpha, scores in [0, 1) as 1 - score) and inverted at
each run's value. That needs four control sizes; with two or three, N_eff interpolates log N against log metric
between the controls (only when the metric improves with every step in size), and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from repeatlab.laws.effective import MIN_R_SQUARED, MetricScaling, fit_metric_scaling
from repeatlab.laws.forms import PowerLaw
from repeatlab.laws.results import LawFit

Method = Literal["power-law fit", "interpolation", "results column"]
MIN_POWER_FIT_SIZES = 4
"""A three-constant power law needs one more point than constants."""


@dataclass(frozen=True, kw_only=True)
class Metric:
    """A run metric the effective size is computed for."""

    key: str
    """Short name used in column names (``n_eff_<key>``, ``mult_<key>``)."""
    label: str
    columns: tuple[str, ...]
    """Results columns that may hold the metric, preferred first (``sweep collect``'s name, then the agreed one)."""
    higher_is_better: bool = False
    precomputed: str | None = None
    """Results column with N_eff already computed by the sweep."""

    def column(self, frame: pd.DataFrame) -> str | None:
        """The first of ``columns`` that ``frame`` holds values in."""
        return next((c for c in self.columns if c in frame and frame[c].notna().any()), None)

    def as_loss(self, values: np.ndarray) -> np.ndarray:
        """The metric as a quantity that falls with N."""
        return 1.0 - values if self.higher_is_better else values


TEST_LOSS = Metric(key="test", label="test loss", columns=("test_loss",), precomputed="n_eff")
COPYING = Metric(key="copying", label="copying loss", columns=("probe_copying_repeated_copies_loss", "probe_copying_loss"),
                 precomputed="n_eff_copying")
PREFIX_MATCHING = Metric(
    key="prefix_matching", label="prefix-matching score",
    columns=("probe_prefix_matching_max", "probe_prefix_matching_top"), higher_is_better=True,
    precomputed="n_eff_prefix_matching",
)
INDUCTION = Metric(key="induction", label="induction score", columns=("probe_induction_max", "probe_induction_top"),
                   higher_is_better=True, precomputed="n_eff_induction")
METRICS = (TEST_LOSS, COPYING, PREFIX_MATCHING, INDUCTION)


@dataclass(frozen=True, kw_only=True)
class ControlCurve:
    """A metric of the control runs against parameters, and how to invert it."""

    metric: Metric
    column: str
    params: np.ndarray
    """Control sizes (mean over seeds), ascending."""
    values: np.ndarray
    """The metric (as recorded, not as a loss) at each size."""
    method: Method
    scaling: MetricScaling | None = None

    @property
    def fit(self) -> LawFit[PowerLaw] | None:
        return self.scaling.fit if self.scaling is not None else None

    def effective_params(self, values: np.ndarray) -> np.ndarray:
        """N_eff of runs whose metric is ``values``; NaN where the metric is missing."""
        values = np.asarray(values, dtype=np.float64)
        out = np.full(values.shape, np.nan)
        ok = np.isfinite(values)
        if self.scaling is not None:
            out[ok] = self.scaling.effective_params(values[ok])
        else:
            as_loss = self.metric.as_loss
            out[ok] = _interpolate_log(as_loss(values[ok]), as_loss(self.values), self.params)
        return out


def control_curve(controls: pd.DataFrame, metric: Metric) -> ControlCurve | str:
    """The control curve of ``metric``, or a sentence saying why there is none."""
    column = metric.column(controls)
    if column is None:
        return f"the control runs have no {' or '.join(metric.columns)} column"
    rows = controls[np.isfinite(controls[column]) & np.isfinite(controls["params"])]
    by_size = rows.groupby("params", as_index=False)[column].mean().sort_values("params")
    params = by_size["params"].to_numpy(dtype=np.float64)
    values = by_size[column].to_numpy(dtype=np.float64)
    if len(params) < 2:
        return f"needs control runs of at least 2 model sizes (found {len(params)})"
    if np.any(metric.as_loss(values) <= 0):
        return f"the controls' {column} must be {'below 1' if metric.higher_is_better else 'positive'} to fit a power law"
    if len(params) < MIN_POWER_FIT_SIZES:
        if np.any(np.diff(metric.as_loss(values)) >= 0):
            return f"the controls' {column} does not improve steadily with size, so it cannot be inverted"
        return ControlCurve(metric=metric, column=column, params=params, values=values, method="interpolation")
    # The run table's required "loss" column carries the metric whatever it is.
    table = pd.DataFrame({"params": params, "loss": values, "repeated_fraction": 0.0})
    try:
        with np.errstate(all="ignore"):  # far-off starts of the multi-start fit overflow harmlessly
            scaling = fit_metric_scaling(table, "loss", higher_is_better=metric.higher_is_better)
    except ValueError as exc:  # FitError included
        return f"the power-law fit of the controls failed ({exc})"
    if not scaling.fit.r_squared >= MIN_R_SQUARED:
        return (f"the controls' {column} is not explained by size (power-law R² = {scaling.fit.r_squared:.2f} < "
                f"{MIN_R_SQUARED:g}), so its effective sizes would be noise")
    return ControlCurve(metric=metric, column=column, params=params, values=values, method="power-law fit", scaling=scaling)


def add_effective_sizes(
    runs: pd.DataFrame, curves: dict[str, ControlCurve | str], metrics: tuple[Metric, ...] = METRICS
) -> pd.DataFrame:
    """Add ``n_eff_<key>``, ``mult_<key>`` and ``method_<key>`` columns for each metric with a curve."""
    runs = runs.copy()
    for metric in metrics:
        method = np.full(len(runs), "", dtype=object)
        if metric.precomputed and metric.precomputed in runs and runs[metric.precomputed].notna().any():
            n_eff = runs[metric.precomputed].to_numpy(dtype=np.float64)
            method[:] = "results column"
        else:
            curve = curves.get(metric.key)
            if not isinstance(curve, ControlCurve) or curve.column not in runs:
                continue
            n_eff = curve.effective_params(runs[curve.column].to_numpy(dtype=np.float64))
            method[:] = curve.method
        runs[f"n_eff_{metric.key}"] = n_eff
        runs[f"mult_{metric.key}"] = n_eff / runs["params"].to_numpy(dtype=np.float64)
        runs[f"method_{metric.key}"] = method
    return runs


def outside_controls(n_eff: float, control_params: np.ndarray) -> Literal["below", "above"] | None:
    """Where an effective size lies outside the control sizes (the law is extrapolated there, by orders of magnitude
    with few controls): ``below`` the smallest, ``above`` the largest, ``None`` inside."""
    if n_eff < np.min(control_params) * (1 - 1e-9):
        return "below"
    if n_eff > np.max(control_params) * (1 + 1e-9):
        return "above"
    return None


def _interpolate_log(values: np.ndarray, control_values: np.ndarray, control_params: np.ndarray) -> np.ndarray:
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
