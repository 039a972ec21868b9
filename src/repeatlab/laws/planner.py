"""Planning a run under a data constraint, from the published laws.

Two questions a practitioner asks before training. With U unique tokens and C FLOPs, how big a model and how
many epochs? (The data-constrained law's answer beside Chinchilla's single-epoch one, which assumes fresh data
that does not exist.) And if a fraction of the training tokens comes from a repeated subset, which repeat counts
land in the poor-performance region?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from repeatlab.errors import RepeatlabError
from repeatlab.laws.forms import DATABLATIONS_C4, DataConstrainedLaw
from repeatlab.laws.region import HERNANDEZ_2022, PoorRegion
from repeatlab.laws.results import JsonResult

_SEARCH_DECADES = 4.0  # the optimum is searched within 10^±4 of Chinchilla's N_opt(C)


@dataclass(frozen=True, kw_only=True)
class Allocation:
    """A split of a compute budget into parameters and tokens."""

    n_params: float
    """N."""
    n_tokens: float
    """D = C / (6 N): tokens read in training."""
    epochs: float
    """D / U: passes over the unique data (below 1: not all of it is used)."""
    loss: float
    """Loss the data-constrained law predicts for this split."""


@dataclass(frozen=True, kw_only=True)
class ComputePlan(JsonResult):
    """The loss-optimal allocation under the data constraint beside Chinchilla's."""

    flops: float
    """C, the budget."""
    unique_tokens: float
    """U, the unique data available."""
    data_constrained: Allocation
    """The split that minimises the data-constrained law's loss."""
    chinchilla: Allocation
    """Chinchilla's compute-optimal split, with its loss under the data constraint."""
    chinchilla_fresh_loss: float
    """What the single-epoch law promises for Chinchilla's split if all its tokens were fresh."""


@dataclass(frozen=True, kw_only=True)
class RepeatRisk:
    """One repeat count considered for the repeated subset."""

    repeats: float
    """Epochs on the repeated subset."""
    repeated_unique_tokens: float
    """Size of the repeated subset: repeated_fraction * total_tokens / repeats."""
    in_poor_region: bool
    """Whether this repeat count falls inside the predicted band."""


@dataclass(frozen=True, kw_only=True)
class RepeatPlan(JsonResult):
    """Which repeat counts the poor-performance region predicts to be harmful for one model and budget."""

    n_params: float
    total_tokens: float
    repeated_fraction: float
    band_epochs: tuple[float, float]
    """(first, last) repeated epochs of the predicted band for this model size."""
    repeats: tuple[RepeatRisk, ...]
    """The repeat counts considered, fewest first."""


def plan_compute(*, unique_tokens: float, flops: float, law: DataConstrainedLaw = DATABLATIONS_C4) -> ComputePlan:
    """Split ``flops`` (C = 6 N D) between parameters and tokens to minimise the data-constrained loss."""
    for name, value in (("unique_tokens", unique_tokens), ("flops", flops)):
        if not (np.isfinite(value) and value > 0):
            raise RepeatlabError(f"{name} must be positive and finite, got {value!r}")
    n_chin, d_chin = (float(v) for v in law.base.compute_optimal(flops))

    def allocation(n_params: float) -> Allocation:
        n_tokens = flops / (6 * n_params)
        # A run that reads fewer tokens than the pool holds sees only D distinct ones.
        loss = float(law.loss(n_params, n_tokens, min(unique_tokens, n_tokens)))
        return Allocation(n_params=n_params, n_tokens=n_tokens, epochs=n_tokens / unique_tokens, loss=loss)

    # A dense scan in log N finds the basin (the law is not convex in N because of the min() terms); a bounded
    # scalar search then polishes within the neighbouring scan points.
    log_grid = np.log(n_chin) + np.linspace(-_SEARCH_DECADES, _SEARCH_DECADES, 2001) * np.log(10)
    losses = [allocation(float(np.exp(x))).loss for x in log_grid]
    i = int(np.argmin(losses))
    bracket = (log_grid[max(i - 1, 0)], log_grid[min(i + 1, len(log_grid) - 1)])
    best = minimize_scalar(
        lambda x: allocation(float(np.exp(x))).loss, bounds=bracket, method="bounded", options={"xatol": 1e-10}
    )
    return ComputePlan(
        flops=flops,
        unique_tokens=unique_tokens,
        data_constrained=allocation(float(np.exp(best.x))),
        chinchilla=allocation(n_chin),
        chinchilla_fresh_loss=float(law.base.loss(n_chin, d_chin)),
    )


def default_repeat_counts(repeated_tokens: float) -> tuple[float, ...]:
    """1, 2, 5, 10, ... up to 1e6 repeats, keeping only counts that leave at least one token in the subset."""
    counts = [m * 10.0**e for e in range(7) for m in (1, 2, 5) if m * 10**e <= 1e6]
    return tuple(c for c in counts if repeated_tokens / c >= 1)


def plan_repeats(
    *,
    n_params: float,
    total_tokens: float,
    repeated_fraction: float,
    repeats: Sequence[float] | None = None,
    region: PoorRegion = HERNANDEZ_2022,
) -> RepeatPlan:
    """Mark which repeat counts of a repeated subset fall in the predicted poor-performance band.

    Args:
        repeated_fraction: share of the ``total_tokens`` drawn from the repeated subset.
        repeats: counts to consider; by default ``default_repeat_counts``.
    """
    for name, value in (("n_params", n_params), ("total_tokens", total_tokens)):
        if not (np.isfinite(value) and value > 0):
            raise RepeatlabError(f"{name} must be positive and finite, got {value!r}")
    if not 0 < repeated_fraction < 1:
        raise RepeatlabError(f"repeated_fraction must be in (0, 1), got {repeated_fraction!r}")
    repeated_tokens = repeated_fraction * total_tokens
    counts = tuple(sorted(repeats)) if repeats is not None else default_repeat_counts(repeated_tokens)
    if not counts or any(not (np.isfinite(c) and c > 0) for c in counts):
        raise RepeatlabError(f"repeats must be a non-empty list of positive numbers, got {repeats!r}")
    first, last = (float(v) for v in region.band(n_params))
    risks = tuple(
        RepeatRisk(repeats=float(c), repeated_unique_tokens=repeated_tokens / c, in_poor_region=first <= c <= last)
        for c in counts
    )
    return RepeatPlan(
        n_params=n_params,
        total_tokens=total_tokens,
        repeated_fraction=repeated_fraction,
        band_epochs=(first, last),
        repeats=risks,
    )
