"""The batched L-BFGS-B against scipy, on bounds, and the independence of rows."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, rosen, rosen_der

from repeatlab.laws.optim import OptimizerConfig, minimize_batch


def _rosenbrock(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.array([rosen(r) for r in x]), np.array([rosen_der(r) for r in x])


STARTS = np.array([[-1.2, 1.0, 0.5], [2.0, -1.5, 1.0], [0.0, 0.0, 0.0], [1.5, 2.5, -0.5]])


def test_finds_the_rosenbrock_minimum_from_every_start_like_scipy() -> None:
    result = minimize_batch(_rosenbrock, STARTS)
    assert result.converged.all()
    np.testing.assert_allclose(result.x, 1.0, atol=1e-5)
    for start, x in zip(STARTS, result.x, strict=True):
        reference = minimize(rosen, start, jac=rosen_der, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 0})
        np.testing.assert_allclose(x, reference.x, atol=1e-5)


def test_each_row_ends_where_it_would_alone() -> None:
    together = minimize_batch(_rosenbrock, STARTS)
    for i, start in enumerate(STARTS):
        alone = minimize_batch(_rosenbrock, start[None])
        np.testing.assert_allclose(alone.x[0], together.x[i], rtol=1e-9, atol=1e-12)
        assert alone.n_iter[0] == together.n_iter[i]


def test_bounds_are_respected_and_active_at_the_solution() -> None:
    def bowl(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        target = np.array([2.0, -3.0])
        return ((x - target) ** 2).sum(1), 2 * (x - target)

    box = {"lower": np.array([-1.0, -1.0]), "upper": np.array([1.0, 1.0])}
    result = minimize_batch(bowl, np.array([[0.0, 0.0], [5.0, 5.0]]), **box)
    assert result.converged.all()
    np.testing.assert_allclose(result.x, [[1.0, -1.0], [1.0, -1.0]], atol=1e-8)


def test_a_start_where_the_objective_is_not_finite_is_reported_not_converged() -> None:
    def log_barrier(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (x[:, 0] - np.log(x[:, 0])), (1 - 1 / x)

    result = minimize_batch(log_barrier, np.array([[3.0], [-1.0]]))
    assert result.converged.tolist() == [True, False]
    assert abs(result.x[0, 0] - 1) < 1e-4  # f is flat to ftol (1e-10 of f) within ~1e-5 of the minimum
    assert result.fun[1] == np.inf


def test_max_iter_caps_the_work() -> None:
    result = minimize_batch(_rosenbrock, STARTS, config=OptimizerConfig(max_iter=3))
    assert (result.n_iter <= 3).all()
    assert not result.converged.any()
