"""Time the batched Chinchilla fit against a plain per-start scipy loop (prints; never asserts).

The full Hoffmann grid (4,500 starts) on Besiroglu et al.'s 240 points, then 1,000 bootstrap refits, each
done twice in the same run: once by ``repeatlab.laws`` (all starts as one batch, grouping of minima included)
and once by calling ``scipy.optimize.minimize(method="L-BFGS-B")`` start by start, with default options, on a
plain numpy objective with the same analytic gradient. The machine is shared, so CPU seconds are the fairer
comparison; wall seconds are printed too. The scipy loop takes minutes.

    python benchmarks/fit_speed.py
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from repeatlab.laws import HOFFMANN_GRID, BootstrapConfig, fit_chinchilla, load_runs
from repeatlab.laws.bootstrap import resample_weights
from repeatlab.laws.fit import grid_points
from repeatlab.laws.objective import chinchilla_theta

T = TypeVar("T")
DELTA = 1e-3
DATA = Path(__file__).resolve().parents[1] / "tests" / "laws" / "data" / "chinchilla_fig4_svg_points.csv"


def _single_start_objective(
    log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray, weights: np.ndarray
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """The summed Huber objective and gradient for one parameter vector, written plainly for scipy."""

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b, e, alpha, beta = theta
        exponents = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
        top = exponents.max(0)  # log-sum-exp with the max shifted out, so no trial step overflows
        terms = np.exp(exponents - top)
        total = terms.sum(0)
        residual = top + np.log(total) - log_loss
        slope = np.clip(residual, -DELTA, DELTA)
        v = weights * slope / total
        grad = [v @ terms[0], v @ terms[1], v @ terms[2], -(v * terms[0]) @ log_n, -(v * terms[1]) @ log_d]
        return float(weights @ (slope * (residual - 0.5 * slope))), np.array(grad)

    return fun


def _scipy_loop(
    log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray, starts: np.ndarray, weights: np.ndarray
) -> tuple[float, float, np.ndarray]:
    """Minimise from each start in turn (row i of ``weights`` weighs the points for start i).

    Returns wall seconds, CPU seconds and the final objective values.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    values = np.empty(len(starts))
    for i, start in enumerate(starts):
        fun = _single_start_objective(log_n, log_d, log_loss, weights[i])
        values[i] = minimize(fun, start, jac=True, method="L-BFGS-B").fun
    return time.perf_counter() - wall, time.process_time() - cpu, values


def _timed(run: Callable[[], T]) -> tuple[float, float, T]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _report(label: str, ours: tuple[float, float], scipy: tuple[float, float]) -> None:
    print(
        f"{label:<16} batched {ours[0]:7.2f} s wall {ours[1]:7.2f} s CPU   "
        f"scipy loop {scipy[0]:7.2f} s wall {scipy[1]:7.2f} s CPU   speed-up {scipy[1] / ours[1]:5.1f}x (CPU)"
    )


def main() -> None:
    frame = pd.read_csv(DATA)
    frame = frame.nsmallest(len(frame) - 5, "loss")
    columns = {"params": frame["Model Size"], "flops": frame["Training FLOP"], "loss": frame["loss"]}
    runs = load_runs(pd.DataFrame(columns))
    log_n, log_d, log_loss = np.log(runs.params), np.log(runs.tokens), np.log(runs.loss)
    starts = grid_points(HOFFMANN_GRID, ("a", "b", "e", "alpha", "beta"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), numpy {np.__version__}")
    print(f"data: {len(runs)} points; grid: {len(starts)} starts; load average {os.getloadavg()[0]:.1f}")

    wall, cpu, fit = _timed(lambda: fit_chinchilla(runs))
    scipy_wall, scipy_cpu, values = _scipy_loop(log_n, log_d, log_loss, starts, np.ones((len(starts), len(runs))))
    _report("grid fit", (wall, cpu), (scipy_wall, scipy_cpu))
    law = fit.law
    print(f"  best objective: batched {fit.objective:.10g}, scipy loop {values.min():.10g}")
    print(f"  A={law.A:.2f} B={law.B:.2f} E={law.E:.4f} alpha={law.alpha:.5f} beta={law.beta:.5f}")

    config = BootstrapConfig(n_resamples=1000, seed=0)
    best = chinchilla_theta(law)
    best_start = {name: (value,) for name, value in zip(("a", "b", "e", "alpha", "beta"), best, strict=True)}
    wall, cpu, booted = _timed(lambda: fit_chinchilla(runs, grid=best_start, bootstrap=config))
    weights = resample_weights(len(runs), config)
    scipy_wall, scipy_cpu, _ = _scipy_loop(log_n, log_d, log_loss, np.tile(best, (len(weights), 1)), weights)
    _report("1000 bootstraps", (wall, cpu), (scipy_wall, scipy_cpu))
    intervals = booted.bootstrap.intervals if booted.bootstrap is not None else {}
    for name, interval in intervals.items():
        print(f"  95% interval {name}: ({interval.low:.4g}, {interval.high:.4g})")


if __name__ == "__main__":
    main()
