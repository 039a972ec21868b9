"""GD++, von Oswald et al. (2022)'s curvature-corrected gradient descent, as a reference predictor.

Von Oswald et al. find that stacked linear self-attention layers are closer to GD++ than to plain gradient
descent: each step also moves every input towards the context's principal directions less,
``x_j <- x_j - gamma X^T X x_j / N``, which after ``K`` steps preconditions the problem by a polynomial in the
context covariance (a step towards Newton's method). Written in the token view of their construction, where a
layer rewrites every token ``[x_j, y_j]`` (the query's ``y`` starts at 0) and the prediction is the negated
query target after the last step:

* ``y_j <- y_j - lr x_j . (sum_i y_i x_i) / N`` (one GD step from ``W = 0`` on the current context), and
* ``x_j <- x_j - gamma (sum_i x_i x_i^T / N) x_j`` (the curvature correction),

both computed from the tokens before the step. With every ``gamma = 0`` and one ``lr`` this is exactly
``gd_predictions`` (a test checks it). ``tune_gdpp`` fits the ``2K`` step sizes on tuning sequences, starting from
tuned plain GD, so GD++ is never worse than GD on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from repeatlab.data.regression import vector_inputs
from repeatlab.probes.regression import half_mse, tune_gd_lr

LBFGS_ITERATIONS = 100


@dataclass(frozen=True)
class GDPlusPlus:
    """The step sizes of ``K`` steps of GD++: ``lrs[k]`` for the targets, ``gammas[k]`` for the inputs."""

    lrs: tuple[float, ...]
    gammas: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.lrs or len(self.lrs) != len(self.gammas):
            raise ValueError(f"GD++ needs one lr and one gamma per step, got {self.lrs} and {self.gammas}")


def gdpp_predictions(inputs: Tensor, lrs: Tensor | tuple[float, ...], gammas: Tensor | tuple[float, ...]) -> Tensor:
    """Predictions ``[n]`` for the queries of ``[n, N + 1, d + 1]`` inputs (query target 0) after ``len(lrs)`` GD++
    steps; differentiable in the inputs and in the step sizes."""
    x, y = inputs[..., :-1], inputs[..., -1]  # [n, N + 1, d], [n, N + 1]
    n_pairs = x.shape[1] - 1
    for lr, gamma in zip(lrs, gammas):
        context_x, context_y = x[:, :-1], y[:, :-1]  # [n, N, d], [n, N]
        signal = torch.einsum("nk,nkd->nd", context_y, context_x) / n_pairs  # [n, d]
        covariance = torch.einsum("nkd,nke->nde", context_x, context_x) / n_pairs  # [n, d, d]
        y = y - lr * torch.einsum("ntd,nd->nt", x, signal)  # [n, N + 1]
        x = x - gamma * torch.einsum("ntd,nde->nte", x, covariance)  # [n, N + 1, d]
    return -y[:, -1]  # [n]


def predictor(steps: GDPlusPlus) -> Callable[[Tensor], Tensor]:
    """``steps`` as a function of the inputs, for ``probes.regression.match_predictor``."""
    return lambda inputs: gdpp_predictions(inputs, steps.lrs, steps.gammas)


def tune_gdpp(rows: Tensor, n_steps: int, *, targets: Tensor | None = None, curvature: bool = True) -> GDPlusPlus:
    """GD++'s step sizes minimising its squared error on ``[n, N + 1, d + 1]`` rows: L-BFGS in float64 from plain
    GD with its tuned step size (``gammas = 0``), never returning worse than that start.

    Args:
        targets: ``[n]`` values to fit instead of the rows' query targets, e.g. a trained model's predictions, to
            ask which GD++ (or GD) run the model's outputs are closest to.
        curvature: false fits per-step learning rates only, with every ``gamma = 0``: plain GD with a tuned schedule,
            the baseline that GD++'s extra ``n_steps`` parameters must beat.
    """
    inputs = vector_inputs(rows).double()
    goal = (rows[:, -1, -1] if targets is None else targets).double()
    start = tune_gd_lr(rows, n_steps)
    lrs = torch.full((n_steps,), start, dtype=torch.float64, requires_grad=True)
    gammas = torch.zeros(n_steps, dtype=torch.float64, requires_grad=curvature)
    optimizer = torch.optim.LBFGS([lrs, gammas] if curvature else [lrs], max_iter=LBFGS_ITERATIONS,
                                  line_search_fn="strong_wolfe")

    def loss_of(steps_lrs: Tensor, steps_gammas: Tensor) -> Tensor:
        return 0.5 * ((gdpp_predictions(inputs, steps_lrs, steps_gammas) - goal) ** 2).mean()

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = loss_of(lrs, gammas)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    fitted = GDPlusPlus(lrs=tuple(float(v) for v in lrs.detach()), gammas=tuple(float(v) for v in gammas.detach()))
    candidates = [fitted, GDPlusPlus(lrs=(start,) * n_steps, gammas=(0.0,) * n_steps)]
    with torch.no_grad():
        losses = [half_mse(predictor(c)(inputs), goal) for c in candidates]
    return candidates[0] if losses[0] <= losses[1] else candidates[1]  # L-BFGS can step into a diverging region


__all__ = ["GDPlusPlus", "gdpp_predictions", "predictor", "tune_gdpp"]
