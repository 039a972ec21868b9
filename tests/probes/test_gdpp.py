"""GD++ (von Oswald et al. 2022's curvature-corrected GD): with no curvature step it is plain GD exactly; tuned, it
is never worse than tuned GD and, over two or more steps, better; fitted to a known GD++ run's predictions it
reproduces them."""

from __future__ import annotations

import torch

from repeatlab.data.regression import RegressionTask, tuning_sequences, vector_inputs
from repeatlab.probes.gdpp import GDPlusPlus, gdpp_predictions, predictor, tune_gdpp
from repeatlab.probes.regression import gd_predictions, half_mse, tune_gd_lr

ROWS = torch.from_numpy(tuning_sequences(RegressionTask(dim=5, n_pairs=8), 512))
INPUTS, TARGETS = vector_inputs(ROWS).double(), ROWS[:, -1, -1].double()


def test_without_curvature_steps_it_is_plain_gd() -> None:
    for n_steps in (1, 2, 3):
        expected = gd_predictions(INPUTS, 0.7, n_steps)
        assert torch.allclose(gdpp_predictions(INPUTS, (0.7,) * n_steps, (0.0,) * n_steps), expected, atol=1e-12)


def test_the_query_does_not_leak_its_target() -> None:
    leaked = INPUTS.clone()
    leaked[:, -1, -1] = 0.0
    steps = ((0.5, 0.5), (0.2, 0.0))
    assert torch.equal(gdpp_predictions(leaked, *steps), gdpp_predictions(INPUTS, *steps))


def test_tuned_gdpp_beats_tuned_gd_over_two_steps_and_equals_it_over_one() -> None:
    gd_loss = {k: half_mse(gd_predictions(INPUTS, tune_gd_lr(ROWS, k), k), TARGETS) for k in (1, 2)}
    one, two = tune_gdpp(ROWS, 1), tune_gdpp(ROWS, 2)
    assert half_mse(predictor(one)(INPUTS), TARGETS) <= gd_loss[1] + 1e-9
    assert half_mse(predictor(two)(INPUTS), TARGETS) < 0.9 * gd_loss[2]
    schedule = tune_gdpp(ROWS, 2, curvature=False)
    assert schedule.gammas == (0.0, 0.0)
    assert half_mse(predictor(schedule)(INPUTS), TARGETS) <= gd_loss[2] + 1e-9


def test_fitting_a_known_run_recovers_its_predictions() -> None:
    known = GDPlusPlus(lrs=(1.2, 0.8), gammas=(0.3, 0.0))
    goal = predictor(known)(INPUTS)
    fitted = tune_gdpp(ROWS, 2, targets=goal)
    assert half_mse(predictor(fitted)(INPUTS), goal) < 1e-6 * half_mse(torch.zeros_like(goal), goal)
