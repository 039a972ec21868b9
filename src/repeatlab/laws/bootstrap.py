"""Bootstrap confidence intervals for a fitted law, all resamples refitted at once.

A resample draws the runs with replacement; its objective is the full-data objective with each point
weighted by how many times it was drawn, so all resamples share one batched optimisation (one row of weights
per resample). Each refit starts from the full-data optimum, as in Besiroglu et al.'s replication: the
resamples are small perturbations of the data, and the question is how far the best basin moves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from repeatlab.config import check_int
from repeatlab.errors import RepeatlabError
from repeatlab.laws.forms import FloatArray
from repeatlab.laws.objective import LogLossModel, huber_objective
from repeatlab.laws.optim import OptimizerConfig, minimize_batch
from repeatlab.laws.results import BootstrapSummary, FitError, Interval, LawT

MAX_RESAMPLES = 100_000
"""The most bootstrap resamples: 1,000 settle a 95% interval, and the refits are batched in memory."""


@dataclass(frozen=True, kw_only=True)
class BootstrapConfig:
    """How many resamples to refit and how to summarise them."""

    n_resamples: int = 1000
    """Resamples of the runs, each refitted."""
    seed: int = 0
    """Seed of the resampling generator."""
    level: float = 0.95
    """Coverage of the percentile intervals."""

    def __post_init__(self) -> None:
        check_int("BootstrapConfig.n_resamples", self.n_resamples, 2, MAX_RESAMPLES,
                  reason="every resample is refitted at once, in memory")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise RepeatlabError(f"BootstrapConfig.seed must be a non-negative integer, got {self.seed!r}")
        if not 0 < self.level < 1:
            raise RepeatlabError(f"BootstrapConfig.level must be in (0, 1), got {self.level!r}")


def resample_weights(n_points: int, config: BootstrapConfig) -> FloatArray:
    """[n_resamples, n_points] draw counts: row r says how often each run appears in resample r."""
    rng = np.random.default_rng(config.seed)
    draws = rng.integers(0, n_points, size=(config.n_resamples, n_points))
    counts = np.zeros((config.n_resamples, n_points))
    np.add.at(counts, (np.arange(config.n_resamples)[:, None], draws), 1.0)
    return counts


def bootstrap_law(
    model: LogLossModel[LawT],
    log_loss: FloatArray,
    best_theta: FloatArray,
    *,
    delta: float,
    optimizer: OptimizerConfig,
    config: BootstrapConfig,
    values: Callable[[LawT], dict[str, float]],
) -> BootstrapSummary:
    """Refit ``model`` on ``config.n_resamples`` resamples and return percentile intervals of ``values(law)``."""
    weights = resample_weights(len(log_loss), config)
    objective = huber_objective(model, log_loss, delta=delta, weights=weights)
    start = np.tile(best_theta, (config.n_resamples, 1))
    result = minimize_batch(objective, start, lower=model.lower, upper=model.upper, config=optimizer)
    samples: dict[str, list[float]] = {}
    n_used = 0
    for theta in result.x[result.converged]:
        try:
            law = model.to_law(theta)
        except ValueError:  # a resample can push a constant out of its valid range; it gets no say
            continue
        n_used += 1
        for name, value in values(law).items():
            samples.setdefault(name, []).append(value)
    if n_used < 2:
        raise FitError(f"only {n_used} of {config.n_resamples} bootstrap refits converged: no interval can be given")
    tail = 100 * (1 - config.level) / 2
    intervals = {
        name: Interval(low=float(np.percentile(v, tail)), high=float(np.percentile(v, 100 - tail)))
        for name, v in samples.items()
    }
    return BootstrapSummary(
        n_resamples=config.n_resamples, n_converged=n_used, seed=config.seed, level=config.level, intervals=intervals
    )
