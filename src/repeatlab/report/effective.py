"""Effective model size: the parameter count a control model would need to match a repeated run's metric.

Hernandez et al. 2022 read the damage done by repeated data as a smaller *effective* model. Each metric's control
curve is built and inverted by ``repeatlab.laws.effective.control_curve`` (the one rule, also used by ``sweep
collect`` and the fine-tuning comparison): a power-law fit with four or more control sizes, log-log interpolation
with two or three, and the report says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from repeatlab.laws.effective import ControlCurve, control_curve as invertible_curve
from repeatlab.laws.results import FitError


@dataclass(frozen=True, kw_only=True)
class Metric:
    """A run metric the effective size is computed for."""

    key: str
    """Short name used in column names (``n_eff_<key>``, ``mult_<key>``)."""
    label: str
    column: str
    """The results column that holds the metric, as ``sweep collect`` names it."""
    higher_is_better: bool = False


TEST_LOSS = Metric(key="test", label="test loss", column="test_loss")
COPYING = Metric(key="copying", label="copying loss", column="probe_copying_repeated_copies_loss")
PREFIX_MATCHING = Metric(key="prefix_matching", label="prefix-matching score", column="probe_prefix_matching_max",
                         higher_is_better=True)
INDUCTION = Metric(key="induction", label="induction score", column="probe_induction_max", higher_is_better=True)
METRICS = (TEST_LOSS, COPYING, PREFIX_MATCHING, INDUCTION)


def control_curve(controls: pd.DataFrame, metric: Metric) -> ControlCurve | str:
    """The control curve of ``metric`` over the control runs' table, or a sentence saying why there is none."""
    column = metric.column
    if column not in controls or controls[column].isna().all():
        return f"the control runs have no {column} values"
    try:
        return invertible_curve(controls["params"], controls[column], metric=column,
                                higher_is_better=metric.higher_is_better)
    except FitError as exc:
        return str(exc)


def add_effective_sizes(
    runs: pd.DataFrame, curves: dict[str, ControlCurve | str], metrics: tuple[Metric, ...] = METRICS
) -> pd.DataFrame:
    """Add ``n_eff_<key>``, ``mult_<key>`` and ``method_<key>`` columns for each metric with a curve."""
    runs = runs.copy()
    for metric in metrics:
        curve = curves.get(metric.key)
        if not isinstance(curve, ControlCurve) or curve.metric not in runs:
            continue
        n_eff = curve.effective_params(runs[curve.metric].to_numpy(dtype=np.float64))
        runs[f"n_eff_{metric.key}"] = n_eff
        runs[f"mult_{metric.key}"] = n_eff / runs["params"].to_numpy(dtype=np.float64)
        runs[f"method_{metric.key}"] = curve.method
    return runs
