"""The two-parameter induction-head model: its gradients are those of its loss, its dynamics have the nested
logits' plateau and abrupt rise, the task's K and B decide between in-context and in-weights learning, and the fit
recovers known constants from the model's own curves."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from repeatlab.data.classification import ClassificationTask
from repeatlab.dynamics.induction_model import (InductionConstants, MeasuredCurves, State, _gradients, _Task,
                                                fit_induction_model, simulate)


def task(**fields: object) -> ClassificationTask:
    return ClassificationTask(**{"relabel_fraction": 0.0, "zipf_exponent": 0.0, **fields})


@pytest.mark.parametrize("fields", [{"n_classes": 64, "burstiness": 2}, {"n_classes": 16, "burstiness": 1,
                                     "relabel_fraction": 0.5, "zipf_exponent": 1.0}])
def test_gradients_match_finite_differences(fields: dict) -> None:
    stats = _Task.of(task(**fields))
    rng = np.random.default_rng(0)
    state = State(0.4, 0.7, 1.3, 0.9, rng.normal(size=len(stats.class_probs)))
    grad, _ = _gradients(state, stats)
    h = 1e-6

    def slope(name: str, k: int | None = None) -> float:
        def moved(sign: float) -> float:
            if k is None:
                return _gradients(replace(state, **{name: getattr(state, name) + sign * h}), stats)[1]
            bump = np.zeros_like(state.w)
            bump[k] = sign * h
            return _gradients(replace(state, w=state.w + bump), stats)[1]
        return (moved(1.0) - moved(-1.0)) / (2 * h)

    for name in ("alpha", "beta", "xi", "prior"):
        assert getattr(grad, name) == pytest.approx(slope(name), rel=1e-5, abs=1e-9), name
    for k in {0, len(state.w) - 1}:  # a group of equally frequent classes moves together: scale to one class
        assert grad.w[k] == pytest.approx(slope("w", k) * stats.class_probs[k] / stats.class_mass[k], rel=1e-5,
                                          abs=1e-9)


def test_at_initialisation_every_token_is_equally_likely_then_the_labels_are_learned_first() -> None:
    t = task(n_classes=512, burstiness=2)
    curves = simulate(t, InductionConstants(lr=0.05, iwl_rate=1.0, xi0=0.01), [0, 200])
    assert curves.icl_loss[0] == pytest.approx(np.log(t.vocab_size), rel=1e-3)
    assert curves.prior[1] > 3.0 and curves.icl_loss[1] < np.log(t.n_labels) + 0.3


def test_in_context_learning_rises_after_a_plateau() -> None:
    curves = simulate(task(n_classes=4096, burstiness=1), InductionConstants(lr=0.05, iwl_rate=1.0, xi0=0.01),
                      range(0, 3001, 10))
    after_prior = curves.steps >= 200  # the labels are learned first (previous test): the loss is near ln L
    loss, steps = curves.icl_loss[after_prior], curves.steps[after_prior]
    start, end = loss[0], loss[-1]
    assert start == pytest.approx(np.log(32), abs=0.3) and end < 0.05 * start
    window = 20  # 200 steps
    drops = loss[:-window] - loss[window:]
    steepest = int(np.argmax(drops))
    assert drops[steepest] > 0.6 * (start - end)  # most of the fall happens within 200 of the 2,800 steps
    assert steps[steepest] >= 400  # after a plateau
    assert min(curves.alpha[-1], curves.beta[-1], curves.xi[-1]) > 1.0  # all three logits formed
    early = curves.steps < steps[steepest] // 2
    assert curves.xi[early][-1] > 10 * curves.alpha[early][-1]  # the outer logit moves first, the inner last


def test_few_classes_and_little_burstiness_favour_in_weights_learning() -> None:
    constants = InductionConstants(lr=1.0, iwl_rate=100.0, xi0=0.1)
    memorised = simulate(task(n_classes=128, burstiness=1), constants, [2000])
    in_context = simulate(task(n_classes=1024, burstiness=6), constants, [2000])
    assert memorised.iwl_loss[-1] < 0.1 and memorised.icl_loss[-1] > np.log(32)
    assert in_context.icl_loss[-1] < 0.1 and in_context.iwl_loss[-1] > in_context.icl_loss[-1]


def test_the_fit_recovers_known_constants() -> None:
    known = InductionConstants(lr=0.2, iwl_rate=20.0, xi0=0.05)
    tasks = [task(n_classes=32, burstiness=1, n_labels=16), task(n_classes=256, burstiness=4, n_labels=16)]
    steps = np.arange(0, 401, 20)
    runs = [MeasuredCurves(t, steps, (c := simulate(t, known, steps)).icl_loss, c.iwl_loss) for t in tasks]
    fit = fit_induction_model(runs, starts=[{"lr": 0.3, "iwl_rate": 10.0, "xi0": 0.1}])
    assert min(fit.r2) > 0.999 and fit.rmse < 0.02 and fit.at_bounds == ()
    assert fit.constants.lr == pytest.approx(known.lr, rel=0.1)
    assert fit.constants.iwl_rate == pytest.approx(known.iwl_rate, rel=0.2)
