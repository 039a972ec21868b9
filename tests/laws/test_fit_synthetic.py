"""Every form recovers known constants from noisy synthetic runs; bad input fails clearly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from repeatlab.laws import (
    DATABLATIONS_C4_BASE,
    BootstrapConfig,
    ChinchillaLaw,
    DataConstrainedLaw,
    FitConfig,
    FitError,
    OptimizerConfig,
    PowerLaw,
    fit_chinchilla,
    fit_data_constrained,
    fit_power_law,
)

NOISE = 0.003  # multiplicative log-normal noise on the losses
SMALL_GRID = {"a": (0.0, 5.0, 10.0), "b": (0.0, 5.0, 10.0), "e": (0.0, 1.0), "alpha": (0.5, 1.0), "beta": (0.5, 1.0)}


def _noisy(loss: np.ndarray, seed: int) -> np.ndarray:
    return loss * np.exp(np.random.default_rng(seed).normal(0, NOISE, loss.shape))


def _log_uniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), n))


def test_power_law_recovery() -> None:
    rng = np.random.default_rng(1)
    true = PowerLaw(E=1.7, n_c=2.4e8, alpha=0.3)
    n = _log_uniform(rng, 1e6, 1e10, 40)
    fit = fit_power_law(pd.DataFrame({"params": n, "loss": _noisy(true.loss(n), 2)}))
    assert fit.law.E == pytest.approx(true.E, rel=0.01)
    assert fit.law.alpha == pytest.approx(true.alpha, rel=0.03)
    assert fit.law.n_c == pytest.approx(true.n_c, rel=0.05)
    assert fit.r_squared > 0.999


def test_chinchilla_recovery_and_bootstrap_covers_the_truth() -> None:
    rng = np.random.default_rng(3)
    true = ChinchillaLaw(A=400.0, B=1800.0, E=1.8, alpha=0.34, beta=0.37)
    n, d = _log_uniform(rng, 1e7, 1e10, 150), _log_uniform(rng, 1e8, 1e11, 150)
    frame = pd.DataFrame({"params": n, "tokens": d, "loss": _noisy(true.loss(n, d), 4)})
    fit = fit_chinchilla(frame, grid=SMALL_GRID, bootstrap=BootstrapConfig(n_resamples=200, seed=7))
    assert fit.law.E == pytest.approx(true.E, rel=0.01)
    assert fit.law.alpha == pytest.approx(true.alpha, rel=0.03)
    assert fit.law.beta == pytest.approx(true.beta, rel=0.03)
    assert fit.law.A == pytest.approx(true.A, rel=0.15)
    assert fit.law.B == pytest.approx(true.B, rel=0.15)
    assert fit.bootstrap is not None
    for name in ("E", "alpha", "beta"):
        interval = fit.bootstrap.intervals[name]
        assert interval.low < getattr(true, name) < interval.high
    again = fit_chinchilla(frame, grid=SMALL_GRID, bootstrap=BootstrapConfig(n_resamples=200, seed=7))
    assert again.bootstrap == fit.bootstrap  # seeded: the same intervals
    assert json.loads(json.dumps(fit.to_dict()))["law"]["alpha"] == fit.law.alpha


def _data_constrained_runs(law: DataConstrainedLaw, seed: int, n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    params, unique = _log_uniform(rng, 1e7, 3e9, n), _log_uniform(rng, 1e8, 3e10, n)
    tokens = unique * _log_uniform(rng, 1, 60, n)
    loss = _noisy(law.loss(params, tokens, unique), seed + 1)
    return pd.DataFrame({"params": params, "tokens": tokens, "unique_tokens": unique, "loss": loss})


def test_data_constrained_decay_constants_recovery() -> None:
    true = DataConstrainedLaw(base=DATABLATIONS_C4_BASE, r_d_star=10.0, r_n_star=4.0)
    fit = fit_data_constrained(_data_constrained_runs(true, 5))
    assert fit.law.base == DATABLATIONS_C4_BASE
    assert fit.law.r_d_star == pytest.approx(10.0, rel=0.05)
    assert fit.law.r_n_star == pytest.approx(4.0, rel=0.1)


def test_data_constrained_all_constants_recovery() -> None:
    base = ChinchillaLaw(A=400.0, B=1800.0, E=1.8, alpha=0.34, beta=0.37)
    true = DataConstrainedLaw(base=base, r_d_star=10.0, r_n_star=4.0)
    grid = {"a": (5.0, 10.0), "b": (5.0, 10.0), "e": (0.0, 1.0), "alpha": (0.3, 0.6), "beta": (0.3, 0.6)}
    grid |= {"r_d_star": (5.0, 30.0), "r_n_star": (2.0, 10.0)}
    fit = fit_data_constrained(_data_constrained_runs(true, 9), base=None, grid=grid)
    assert fit.law.base.E == pytest.approx(1.8, rel=0.01)
    assert fit.law.base.alpha == pytest.approx(0.34, rel=0.05)
    assert fit.law.base.beta == pytest.approx(0.37, rel=0.05)
    assert fit.law.r_d_star == pytest.approx(10.0, rel=0.1)
    assert fit.law.r_n_star == pytest.approx(4.0, rel=0.2)


def test_minima_are_distinct_and_best_first() -> None:
    rng = np.random.default_rng(11)
    n = _log_uniform(rng, 1e6, 1e10, 30)
    fit = fit_power_law(pd.DataFrame({"params": n, "loss": _noisy(PowerLaw(E=1.7, n_c=2.4e8, alpha=0.3).loss(n), 12)}))
    objectives = [m.objective for m in fit.minima]
    assert objectives == sorted(objectives)
    assert fit.minima[0].law == fit.law
    assert sum(m.n_starts for m in fit.minima) <= fit.n_converged <= fit.n_starts


def test_too_few_points() -> None:
    frame = pd.DataFrame({"params": [1e8, 2e8, 4e8], "tokens": [1e9, 2e9, 4e9], "loss": [3.0, 2.9, 2.8]})
    with pytest.raises(FitError, match="5 free parameters and needs at least 6 runs; got 3"):
        fit_chinchilla(frame)


def test_nan_and_non_positive_losses_are_rejected() -> None:
    with pytest.raises(ValueError, match="'loss' must be positive and finite"):
        fit_power_law(pd.DataFrame({"params": [1e6, 1e7, 1e8, 1e9], "loss": [4.0, float("nan"), 3.0, 2.5]}))
    with pytest.raises(ValueError, match="'params' must be positive"):
        fit_power_law(pd.DataFrame({"params": [0.0, 1e7, 1e8, 1e9], "loss": [4.0, 3.5, 3.0, 2.5]}))


def test_a_grid_that_never_converges_is_an_error() -> None:
    n = np.array([1e6, 1e7, 1e8, 1e9, 1e10])
    frame = pd.DataFrame({"params": n, "loss": PowerLaw(E=1.7, n_c=2.4e8, alpha=0.3).loss(n)})
    config = FitConfig(optimizer=OptimizerConfig(max_iter=1))
    with pytest.raises(FitError, match="none of the 150 starts of the power fit converged"):
        fit_power_law(frame, config=config)


def test_a_grid_must_name_exactly_the_fitted_parameters() -> None:
    n = np.array([1e6, 1e7, 1e8, 1e9, 1e10])
    frame = pd.DataFrame({"params": n, "loss": PowerLaw(E=1.7, n_c=2.4e8, alpha=0.3).loss(n)})
    with pytest.raises(ValueError, match="exactly a, e, alpha"):
        fit_power_law(frame, grid={"a": (1.0,), "alpha": (0.5,)})


def test_power_law_fits_the_control_runs_unless_told_otherwise() -> None:
    n = np.array([1e6, 1e7, 1e8, 1e9, 1e10])
    law = PowerLaw(E=1.7, n_c=2.4e8, alpha=0.3)
    controls = pd.DataFrame({"params": n, "loss": law.loss(n), "repeated_fraction": 0.0})
    repeated = pd.DataFrame({"params": n, "loss": law.loss(n) + 0.3, "repeated_fraction": 0.1})
    sweep = pd.concat([controls, repeated], ignore_index=True)
    assert fit_power_law(sweep).n_points == 5
    assert fit_power_law(sweep).law.alpha == pytest.approx(0.3, rel=1e-4)
    assert fit_power_law(sweep, controls_only=False).n_points == 10
