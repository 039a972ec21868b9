"""How close a model trained on in-context regression is to gradient descent on its context (von Oswald et al. 2022).

Von Oswald et al. show that a linear self-attention layer can implement one step of gradient descent on the
context's squared error, starting from ``W = 0``, and that trained layers match it: the same loss as GD with the
best learning rate, and aligned predictions and sensitivities. ``compare_to_gd`` measures the three on held-out
sequences against ``k`` steps of GD whose learning rate ``tune_gd_lr`` tuned on separate sequences of the same
distribution (``data.regression.tuning_sequences``), and adds exact least squares on the context for scale:

* ``loss_ratio``: the model's loss over GD's (1 = as good as GD; von Oswald et al.'s Figure 2 left);
* ``prediction_cosine`` and ``prediction_difference``: the cosine between the model's and GD's predictions over the
  held-out queries, and the norm of their difference relative to GD's;
* ``sensitivity_cosine``: the mean over queries of the cosine between ``d y_hat / d x_q`` of the model and of GD
  (their "model cos").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

from repeatlab.data.loader import eval_sequence_ids
from repeatlab.data.prepared import PreparedDataset
from repeatlab.data.regression import regression_task, tuning_sequences, vector_inputs
from repeatlab.models.gpt import GPT

GD_TUNING_SEQUENCES = 4096
"""Sequences of the task's tuning set on which GD's step size is tuned."""
LR_GRID = np.logspace(-2, 2, 41)
"""Learning rates tried before the bounded refinement (GD's loss is a polynomial in the learning rate)."""


def gd_predictions(inputs: Tensor, lr: float | Tensor, n_steps: int = 1) -> Tensor:
    """Predictions ``[n]`` for the queries of ``[n, N + 1, d + 1]`` inputs after ``n_steps`` of gradient descent
    from ``W = 0`` on each context's ``1/(2N) sum_i (W x_i - y_i)^2``, with step size ``lr``."""
    x, y = inputs[:, :-1, :-1], inputs[:, :-1, -1]  # [n, N, d], [n, N]
    weights = torch.zeros(x.shape[0], x.shape[2], dtype=inputs.dtype, device=inputs.device)  # [n, d]
    for _ in range(n_steps):
        residual = torch.einsum("nkd,nd->nk", x, weights) - y  # [n, N]
        weights = weights - lr * torch.einsum("nk,nkd->nd", residual, x) / x.shape[1]  # [n, d]
    return torch.einsum("nd,nd->n", inputs[:, -1, :-1], weights)  # [n]


def least_squares_predictions(inputs: Tensor) -> Tensor:
    """Predictions ``[n]`` of the minimum-norm least-squares fit to each context (exact when ``N >= d``, no noise)."""
    x, y = inputs[:, :-1, :-1].double(), inputs[:, :-1, -1].double()  # [n, N, d], [n, N]
    weights = torch.linalg.pinv(x) @ y.unsqueeze(-1)  # [n, d, 1]
    return (inputs[:, -1:, :-1].double() @ weights).reshape(-1).to(inputs.dtype)  # [n]


def half_mse(predictions: Tensor, targets: Tensor) -> float:
    """``mean((y_hat - y)^2) / 2``, the training objective of ``train.objective`` for one query per sequence."""
    return float(0.5 * ((predictions.double() - targets.double()) ** 2).mean())


def tune_gd_lr(rows: Tensor, n_steps: int = 1) -> float:
    """The step size that minimises GD's loss on ``[n, N + 1, d + 1]`` rows: a log grid, then Brent's method
    between the best point's neighbours."""
    inputs, targets = vector_inputs(rows).double(), rows[:, -1, -1].double()

    def loss(lr: float) -> float:
        return half_mse(gd_predictions(inputs, lr, n_steps), targets)

    losses = [loss(float(lr)) for lr in LR_GRID]
    best = int(np.argmin(losses))
    low, high = LR_GRID[max(best - 1, 0)], LR_GRID[min(best + 1, len(LR_GRID) - 1)]
    refined = minimize_scalar(loss, bounds=(float(low), float(high)), method="bounded")
    return float(refined.x) if refined.fun <= losses[best] else float(LR_GRID[best])


@dataclass(frozen=True)
class GDComparison:
    """A model against ``n_steps`` of tuned gradient descent on the same held-out sequences."""

    n_steps: int
    gd_lr: float
    model_loss: float
    gd_loss: float
    least_squares_loss: float
    zero_loss: float
    """Loss of predicting 0 (no in-context learning at all)."""
    loss_ratio: float
    prediction_cosine: float
    prediction_difference: float
    sensitivity_cosine: float

    def metrics(self, prefix: str = "regression") -> dict[str, float]:
        """Flat ``{prefix}.{field}`` numbers for a metrics record."""
        return {f"{prefix}.{name}": float(value) for name, value in vars(self).items()}


def model_predictions(model: GPT, inputs: Tensor) -> Tensor:
    """The model's predictions ``[n]`` at the query (last) position of ``[n, N + 1, d + 1]`` inputs."""
    return model(inputs)[:, -1]


def _sensitivities(predict: Callable[[Tensor], Tensor], inputs: Tensor) -> Tensor:
    """``d y_hat / d x_q`` ``[n, d]`` of a batched predictor ``inputs -> [n]`` (each query depends on its row only)."""
    inputs = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        predictions = predict(inputs)  # [n]
        (grad,) = torch.autograd.grad(predictions.sum(), inputs)
    return grad[:, -1, :-1]  # [n, d]


@dataclass(frozen=True)
class PredictorMatch:
    """A model against a reference predictor on the same held-out queries (the numbers of ``GDComparison``)."""

    model_loss: float
    reference_loss: float
    loss_ratio: float
    prediction_cosine: float
    prediction_difference: float
    sensitivity_cosine: float


def match_predictor(model: GPT, rows: Tensor, reference: Callable[[Tensor], Tensor]) -> PredictorMatch:
    """``model`` against ``reference`` (inputs ``[n, N + 1, d + 1]`` -> predictions ``[n]``, differentiable in the
    inputs) on the held-out ``rows``: loss ratio, prediction and sensitivity cosines; in eval mode, on the model's
    device."""
    device = next(model.parameters()).device
    rows = rows.to(device=device, dtype=torch.float32)
    inputs, targets = vector_inputs(rows), rows[:, -1, -1]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            predicted = model_predictions(model, inputs)  # [n]
        model_sensitivity = _sensitivities(lambda batch: model_predictions(model, batch), inputs)  # [n, d]
    finally:
        model.train(was_training)
    with torch.no_grad():
        expected = reference(inputs)  # [n]
    reference_sensitivity = _sensitivities(reference, inputs)  # [n, d]
    model_loss, reference_loss = half_mse(predicted, targets), half_mse(expected, targets)
    cosine = torch.nn.functional.cosine_similarity
    return PredictorMatch(
        model_loss=model_loss,
        reference_loss=reference_loss,
        loss_ratio=model_loss / reference_loss,
        prediction_cosine=float(cosine(predicted.double(), expected.double(), dim=0)),
        prediction_difference=float((predicted.double() - expected.double()).norm() / expected.double().norm()),
        sensitivity_cosine=float(cosine(model_sensitivity.double(), reference_sensitivity.double(), dim=1).mean()),
    )


def compare_to_gd(model: GPT, rows: Tensor, *, gd_lr: float, n_steps: int = 1) -> GDComparison:
    """``model`` against ``n_steps`` of GD with step size ``gd_lr`` (``tune_gd_lr`` on other sequences) on the
    held-out ``rows [n, N + 1, d + 1]``; in eval mode, on the model's device."""
    match = match_predictor(model, rows, lambda batch: gd_predictions(batch, gd_lr, n_steps))
    inputs = vector_inputs(rows.to(dtype=torch.float32))
    targets = rows[:, -1, -1]
    return GDComparison(
        n_steps=n_steps,
        gd_lr=gd_lr,
        model_loss=match.model_loss,
        gd_loss=match.reference_loss,
        least_squares_loss=half_mse(least_squares_predictions(inputs), targets),
        zero_loss=half_mse(torch.zeros_like(targets), targets),
        loss_ratio=match.loss_ratio,
        prediction_cosine=match.prediction_cosine,
        prediction_difference=match.prediction_difference,
        sensitivity_cosine=match.sensitivity_cosine,
    )


@dataclass(frozen=True)
class RegressionInputs:
    """What ``compare_to_gd`` is given for a run: held-out rows and the tuned step size."""

    rows: Tensor
    """``[n, N + 1, d + 1]`` test-split sequences (the same ids as every other probe's test sample)."""
    gd_lr: float
    n_steps: int


def regression_inputs(dataset: PreparedDataset, *, n_sequences: int, seed: int, n_steps: int = 1) -> RegressionInputs:
    """The probe's inputs over a regression dataset: a seeded sample of its test split and GD's step size tuned
    on its tuning set, so the probe suite and the step evaluator compare the same numbers."""
    task = regression_task(dataset)
    ids = eval_sequence_ids(dataset.n_sequences("test"), n_sequences, seed)
    rows = torch.from_numpy(np.array(dataset.sequences("test")[ids]))  # [n, N + 1, d + 1]
    gd_lr = tune_gd_lr(torch.from_numpy(tuning_sequences(task, GD_TUNING_SEQUENCES)), n_steps)
    return RegressionInputs(rows=rows, gd_lr=gd_lr, n_steps=n_steps)


__all__ = ["GDComparison", "PredictorMatch", "RegressionInputs", "compare_to_gd", "gd_predictions", "half_mse",
           "least_squares_predictions", "match_predictor", "model_predictions", "regression_inputs", "tune_gd_lr"]
