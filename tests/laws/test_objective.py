"""Each batched model predicts what its law does, and its analytic gradient matches finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from repeatlab.laws import DATABLATIONS_C4_BASE, ChinchillaLaw, DataConstrainedLaw
from repeatlab.laws.objective import ChinchillaModel, DataConstrainedModel, PowerModel, huber_objective

RNG = np.random.default_rng(0)
N = np.exp(RNG.uniform(np.log(1e7), np.log(1e10), 40))
U = np.exp(RNG.uniform(np.log(1e8), np.log(3e10), 40))
D = U * RNG.uniform(1, 60, 40)
BASE = ChinchillaLaw(A=400.0, B=1800.0, E=1.8, alpha=0.34, beta=0.37)
TRUE = DataConstrainedLaw(base=BASE, r_d_star=10.0, r_n_star=4.0)
LOSS = TRUE.loss(N, D, U) * np.exp(RNG.normal(0, 0.01, 40))


def _models() -> list[tuple[object, np.ndarray]]:
    repeats = np.maximum(D / U - 1, 0)
    return [
        (PowerModel(np.log(N)), np.array([[2.0, 0.5, 0.1], [5.0, 1.0, 0.3]])),
        (ChinchillaModel(np.log(N), np.log(D)), np.array([[6.0, 7.0, 0.5, 0.3, 0.35], [2.0, 3.0, 1.0, 0.5, 0.1]])),
        (
            DataConstrainedModel(np.log(N), np.log(U), repeats),
            np.array([[6.0, 7.5, 0.6, 0.34, 0.37, 10.0, 4.0], [5.0, 8.0, 0.5, 0.3, 0.4, 30.0, 2.0]]),
        ),
        (
            DataConstrainedModel(np.log(N), np.log(U), repeats, fixed_base=DATABLATIONS_C4_BASE),
            np.array([[15.0, 5.0], [40.0, 1.5]]),
        ),
    ]


@pytest.mark.parametrize(("model", "theta"), _models(), ids=["power", "chinchilla", "dc-full", "dc-fixed"])
def test_gradient_matches_finite_differences(model, theta: np.ndarray) -> None:
    objective = huber_objective(model, np.log(LOSS), delta=1e-3)
    rows = np.arange(len(theta))
    _, grad = objective(theta, rows)
    step = 1e-6
    numeric = np.zeros_like(theta)
    for j in range(theta.shape[1]):
        up, down = theta.copy(), theta.copy()
        up[:, j] += step
        down[:, j] -= step
        numeric[:, j] = (objective(up, rows)[0] - objective(down, rows)[0]) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-9)


def test_data_constrained_model_predicts_the_law_including_capped_parameters() -> None:
    model = DataConstrainedModel(np.log(N), np.log(U), np.maximum(D / U - 1, 0))
    theta = np.array([[np.log(400.0), np.log(1800.0), np.log(1.8), 0.34, 0.37, 10.0, 4.0]])
    capped = N > TRUE.base.optimal_params_for_tokens(U)
    assert capped.any() and not capped.all()  # both branches of U_N = min(N, N_opt(U)) are exercised
    pred, _ = model.log_predict(theta)
    np.testing.assert_allclose(np.exp(pred[0]), TRUE.loss(N, D, U), rtol=1e-12)


def test_bootstrap_weights_scale_each_point() -> None:
    model = ChinchillaModel(np.log(N), np.log(D))
    theta = np.array([[6.0, 7.0, 0.5, 0.3, 0.35]])
    weights = np.zeros((1, len(N)))
    weights[0, :5] = 2.0
    weighted, _ = huber_objective(model, np.log(LOSS), delta=1e-3, weights=weights)(theta, np.arange(1))
    plain, _ = huber_objective(ChinchillaModel(np.log(N[:5]), np.log(D[:5])), np.log(LOSS[:5]), delta=1e-3)(
        theta, np.arange(1)
    )
    assert weighted[0] == pytest.approx(2 * plain[0], rel=1e-12)
