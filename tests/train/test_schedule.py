"""The learning-rate schedule and the evaluation steps are pure functions of the step."""

from __future__ import annotations

import math

import pytest

from repeatlab.train.config import OptimConfig
from repeatlab.train.schedule import eval_steps, learning_rate


def test_warmup_is_linear_up_to_the_peak() -> None:
    optim = OptimConfig(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [learning_rate(s, optim=optim, n_steps=100) for s in range(10)]
    assert lrs == pytest.approx([1e-3 * (s + 1) / 10 for s in range(10)])
    assert learning_rate(10, optim=optim, n_steps=100) == pytest.approx(1e-3)


def test_cosine_decays_monotonically_to_the_floor() -> None:
    optim = OptimConfig(lr=2e-3, warmup_steps=5, min_lr_ratio=0.1)
    lrs = [learning_rate(s, optim=optim, n_steps=50) for s in range(5, 50)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] == pytest.approx(2e-4)
    # Halfway through the decay the cosine is at the mean of peak and floor.
    assert learning_rate(5 + 22, optim=optim, n_steps=50) == pytest.approx(1.1e-3)


def test_warmup_longer_than_the_run_warms_up_the_whole_run() -> None:
    optim = OptimConfig(lr=1.0, warmup_steps=1000)
    lrs = [learning_rate(s, optim=optim, n_steps=4) for s in range(4)]
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_no_warmup_starts_at_the_peak() -> None:
    optim = OptimConfig(lr=1.0, warmup_steps=0, min_lr_ratio=0.0)
    assert learning_rate(0, optim=optim, n_steps=10) == 1.0
    assert learning_rate(9, optim=optim, n_steps=10) == pytest.approx(0.0, abs=1e-12)
    assert all(math.isfinite(learning_rate(s, optim=optim, n_steps=1)) for s in range(1))


def test_negative_step_is_refused() -> None:
    with pytest.raises(ValueError, match="step"):
        learning_rate(-1, optim=OptimConfig(), n_steps=10)


def test_eval_steps_are_log_spaced_regular_first_and_last() -> None:
    steps = eval_steps(1000, n_log_evals=10, eval_every=250)
    assert steps[0] == 0 and steps[-1] == 1000
    assert {1, 2, 5, 10, 22, 46, 100, 215, 464, 1000} <= set(steps)  # geomspace(1, 1000, 10), rounded
    assert {250, 500, 750} <= set(steps)
    assert steps == sorted(set(steps))


def test_eval_steps_resolve_early_training() -> None:
    steps = eval_steps(10_000, n_log_evals=20, eval_every=None)
    assert sum(1 for s in steps if 0 < s <= 100) >= 9


def test_eval_steps_without_log_evals_keep_first_and_last() -> None:
    assert eval_steps(7, n_log_evals=0, eval_every=None) == [0, 7]
    assert eval_steps(7, n_log_evals=0, eval_every=3) == [0, 3, 6, 7]
