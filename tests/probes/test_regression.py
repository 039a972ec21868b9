"""The GD comparison: gradient descent written out, its tuned step size, and a linear self-attention layer set by
hand to von Oswald et al.'s construction, which must match one GD step exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repeatlab.data.prepared import load_prepared
from repeatlab.data.regression import RegressionTask, vector_inputs, write_regression_dataset
from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT
from repeatlab.models.sizes import model_config
from repeatlab.probes import ProbeConfig, run_probes
from repeatlab.probes.regression import (
    compare_to_gd,
    gd_predictions,
    least_squares_predictions,
    regression_inputs,
    tune_gd_lr,
)

TASK = RegressionTask(dim=4, n_pairs=6, n_train_sequences=64, n_test_sequences=256, seed=0)


def rows(n: int = 256, seed: int = 5) -> torch.Tensor:
    return torch.from_numpy(TASK.sample(n, seed))


def test_one_gd_step_is_the_closed_form() -> None:
    inputs = vector_inputs(rows(16)).double()
    x, y, x_q = inputs[:, :-1, :-1], inputs[:, :-1, -1], inputs[:, -1, :-1]
    expected = 0.7 * torch.einsum("nk,nkd,nd->n", y, x, x_q) / x.shape[1]
    torch.testing.assert_close(gd_predictions(inputs, 0.7), expected)


def test_many_small_gd_steps_reach_least_squares() -> None:
    inputs = vector_inputs(rows(16)).double()
    # lr < 2 / d bounds lr * (largest eigenvalue of X^T X / N), since |x| <= 1 entrywise: GD converges.
    torch.testing.assert_close(gd_predictions(inputs, 0.4, n_steps=20_000), least_squares_predictions(inputs),
                               rtol=1e-3, atol=1e-3)


def test_the_tuned_step_size_is_the_least_squares_optimum() -> None:
    data = rows(512).double()
    inputs, target = vector_inputs(data), data[:, -1, -1]
    one_step = gd_predictions(inputs, 1.0)  # GD's prediction is linear in the step size
    optimum = float((one_step * target).sum() / (one_step**2).sum())
    assert tune_gd_lr(data) == pytest.approx(optimum, rel=1e-3)


def gd_construction(lr: float, dim: int, n_pairs: int) -> GPT:
    """lsa-1l set to one GD step: queries and keys read x, values read y, the output head reads the update."""
    model = GPT(model_config("lsa-1l", vocab_size=0, context=n_pairs + 1, d_vector=dim + 1))
    d_model = model.config.d_model
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.w_in.weight[: dim + 1, : dim + 1] = torch.eye(dim + 1)  # e -> the first d + 1 dimensions
        q, k, v = model.blocks[0].attn.c_attn.weight.split(d_model)  # each [D, D]
        q[:dim, :dim] = torch.eye(dim)
        k[:dim, :dim] = torch.eye(dim)
        v[0, dim] = 1.0  # the value is y
        model.blocks[0].attn.c_proj.weight[dim + 1, 0] = 1.0  # written to a dimension the input leaves empty
        # The query attends to the N pairs and to itself (whose y is 0): the mean is over N + 1 keys.
        model.w_out.weight[0, dim + 1] = lr * (n_pairs + 1) / n_pairs
    return model


def test_the_gd_construction_matches_gd_exactly() -> None:
    lr = tune_gd_lr(rows(1024, seed=9))
    comparison = compare_to_gd(gd_construction(lr, TASK.dim, TASK.n_pairs), rows(), gd_lr=lr)
    assert comparison.loss_ratio == pytest.approx(1.0, abs=1e-5)
    assert comparison.prediction_cosine == pytest.approx(1.0, abs=1e-6)
    assert comparison.sensitivity_cosine == pytest.approx(1.0, abs=1e-5)
    assert comparison.prediction_difference < 1e-4
    assert comparison.least_squares_loss < 1e-6 < comparison.gd_loss < comparison.zero_loss


def test_an_untrained_layer_does_not_match_gd() -> None:
    torch.manual_seed(0)
    model = GPT(model_config("lsa-1l", vocab_size=0, context=TASK.context, d_vector=TASK.d_vector))
    comparison = compare_to_gd(model, rows(), gd_lr=tune_gd_lr(rows(1024, seed=9)))
    assert comparison.loss_ratio > 1.2
    assert abs(comparison.sensitivity_cosine) < 0.5
    # Two GD steps with their own tuned step size beat one.
    two = compare_to_gd(model, rows(), gd_lr=tune_gd_lr(rows(1024, seed=9), 2), n_steps=2)
    assert two.gd_loss < comparison.gd_loss


def test_the_suite_runs_the_regression_probe_on_vector_models(tmp_path: Path) -> None:
    dataset = load_prepared(write_regression_dataset(TASK, tmp_path / "data"))
    inputs = regression_inputs(dataset, n_sequences=64, seed=0)
    model = gd_construction(inputs.gd_lr, TASK.dim, TASK.n_pairs)
    results = run_probes(model, dataset, None, ProbeConfig())  # the default means the vector probes here
    assert results.config.probes == ("regression",)
    summary = results.to_dict()["summary"]
    assert summary["regression.loss_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert results.to_dict()["regression"]["gd_lr"] == inputs.gd_lr
    with pytest.raises(RepeatlabError, match="the induction probe.s. read tokens and this is a vector model"):
        run_probes(model, dataset, None, ProbeConfig(probes=("induction",)))
    with pytest.raises(RepeatlabError, match="needs the run's prepared dataset"):
        run_probes(model, None, None, ProbeConfig())
    token_model = GPT(model_config("tiny-1l", vocab_size=16, context=8))
    with pytest.raises(RepeatlabError, match="the regression probe needs a vector model"):
        run_probes(token_model, None, None, ProbeConfig(probes=("regression",), start_token=0))
