"""The planner: datablations' optimal allocation and the repeat-count check."""

from __future__ import annotations

import pytest

from repeatlab.laws import HERNANDEZ_2022, plan_compute, plan_repeats


def test_datablations_readme_optimal_allocation() -> None:
    # README grid search at C = 1e22, U = 25e9: about 237.3e9 tokens (9.49 epochs) and 7.02e9 params.
    plan = plan_compute(unique_tokens=25e9, flops=1e22)
    best = plan.data_constrained
    assert best.n_params == pytest.approx(7.02e9, rel=2e-3)
    assert best.n_tokens == pytest.approx(237.3e9, rel=2e-3)
    assert best.epochs == pytest.approx(9.49, rel=2e-3)
    assert 6 * best.n_params * best.n_tokens == pytest.approx(1e22)
    # Chinchilla's single-epoch choice is worse once its tokens have to be repeats, and it promised more.
    assert plan.chinchilla.loss > best.loss
    assert plan.chinchilla_fresh_loss < plan.chinchilla.loss


def test_with_ample_data_the_plans_agree() -> None:
    plan = plan_compute(unique_tokens=1e15, flops=1e21)
    assert plan.data_constrained.n_params == pytest.approx(plan.chinchilla.n_params, rel=1e-3)
    assert plan.data_constrained.loss == pytest.approx(plan.chinchilla_fresh_loss, rel=1e-9)


def test_repeat_counts_are_flagged_by_the_band() -> None:
    plan = plan_repeats(n_params=8e8, total_tokens=1e11, repeated_fraction=0.1)
    first, last = (float(v) for v in HERNANDEZ_2022.band(8e8))
    assert plan.band_epochs == (first, last)
    flagged = [r.repeats for r in plan.repeats if r.in_poor_region]
    assert flagged == [r.repeats for r in plan.repeats if first <= r.repeats <= last]
    assert 100 in flagged  # Hernandez et al.: 100 repeats of a small subset hurts an 800M model badly
    assert all(r.repeated_unique_tokens == pytest.approx(1e10 / r.repeats) for r in plan.repeats)


def test_repeat_plan_validation() -> None:
    with pytest.raises(ValueError, match="repeated_fraction"):
        plan_repeats(n_params=8e8, total_tokens=1e11, repeated_fraction=0.0)
    with pytest.raises(ValueError, match="repeats"):
        plan_repeats(n_params=8e8, total_tokens=1e11, repeated_fraction=0.1, repeats=[0.0])
    with pytest.raises(ValueError, match="flops"):
        plan_compute(unique_tokens=1e9, flops=-1.0)
